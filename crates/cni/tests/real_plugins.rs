//! Integration tests with the real CNI plugins (Debian's
//! `containernetworking-plugins` in /usr/lib/cni), real network namespaces
//! and real iptables. They need root; when not root they fail unless
//! `RKUBE_SKIP_ROOT_TESTS=1` is set.
//!
//! Each test uses its own bridge, podCIDR, network name, host-local data dir
//! and cache dir, so tests run in parallel; a guard tears everything down
//! (CNI DEL, netns, bridge) even when a test fails.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use rkube_cni::{
    in_netns, netns_path, remove_node_masquerade, Cni, CniConfig, DefaultNetwork, HostNetns,
    Masquerade, NetnsError, NetnsOps, NetworkSource, PortMapping, Protocol, SandboxNetwork,
};

/// Whether to run: root, or skip only when explicitly asked.
fn root_or_skip() -> bool {
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
    {
        return true;
    }
    assert!(
        std::env::var_os("RKUBE_SKIP_ROOT_TESTS").is_some(),
        "these tests need root (set RKUBE_SKIP_ROOT_TESTS=1 to skip them)"
    );
    eprintln!("skipping: not root");
    false
}

/// One test's network: a bridge, CIDR, network name, dirs, and the
/// sandboxes (with their netns) it created; all removed on drop.
struct Net {
    tag: String,
    net: DefaultNetwork,
    dir: tempfile::TempDir,
    cni: Cni,
    sandboxes: Vec<SandboxNetwork>,
}

impl Net {
    /// `tag` is short (bridge `rkt-<tag>`); `cidr` unique per test.
    fn new(tag: &str, cidr: &str) -> Self {
        Self::with_masquerade(tag, cidr, Masquerade::Node)
    }

    fn with_masquerade(tag: &str, cidr: &str, masquerade: Masquerade) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut net = DefaultNetwork::new(cidr);
        net.masquerade = masquerade;
        net.name = format!("rkube-test-{tag}");
        net.bridge = format!("rkt-{tag}");
        net.ipam_data_dir = Some(dir.path().join("ipam"));
        let cni = Self::cni_for(&net, dir.path());
        Self {
            tag: tag.into(),
            net,
            dir,
            cni,
            sandboxes: Vec::new(),
        }
    }

    fn cni_for(net: &DefaultNetwork, dir: &Path) -> Cni {
        Cni::new(CniConfig {
            plugin_dirs: vec!["/usr/lib/cni".into()],
            network: NetworkSource::Generated(net.clone()),
            cache_dir: dir.join("cache"),
            enable_ip_forward: true,
        })
        .unwrap()
    }

    /// Creates a netns and returns the sandbox description (not yet set up).
    fn sandbox(&mut self, name: &str, port_mappings: Vec<PortMapping>) -> SandboxNetwork {
        let id = format!("{}-{name}-{}", self.tag, std::process::id());
        let path = netns_path(&format!("rkube-test-{id}"));
        let _ = HostNetns.delete(&path);
        HostNetns.create(&path).unwrap();
        let sb = SandboxNetwork {
            id,
            netns_path: path,
            ifname: "eth0".into(),
            pod_namespace: "default".into(),
            pod_name: name.into(),
            pod_uid: format!("uid-{name}"),
            port_mappings,
        };
        self.sandboxes.push(sb.clone());
        sb
    }

    fn ipam_file(&self, ip: IpAddr) -> PathBuf {
        self.dir
            .path()
            .join("ipam")
            .join(&self.net.name)
            .join(ip.to_string())
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for sb in &self.sandboxes {
            if let Err(e) = self.cni.teardown(sb) {
                eprintln!("cleanup: teardown {}: {e}", sb.id);
            }
            let _ = HostNetns.delete(&sb.netns_path);
        }
        let _ = Command::new("ip")
            .args(["link", "del", &self.net.bridge])
            .status();
        if let Err(e) = remove_node_masquerade(&self.net.pod_cidr) {
            eprintln!("cleanup: masquerade rule: {e}");
        }
    }
}

/// Listens on `addr` inside the netns and echoes one line per connection.
fn echo_server_in(netns: &Path, addr: SocketAddr) -> SocketAddr {
    let listener = in_netns(netns, move || TcpListener::bind(addr))
        .unwrap()
        .unwrap();
    let local = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut buf = [0u8; 64];
            if let Ok(n) = conn.read(&mut buf) {
                let _ = conn.write_all(&buf[..n]);
            }
        }
    });
    local
}

/// Writes a message and expects it echoed back.
fn assert_echo(mut conn: TcpStream, msg: &str) {
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(msg.as_bytes()).unwrap();
    let mut buf = vec![0u8; msg.len()];
    conn.read_exact(&mut buf).unwrap();
    assert_eq!(String::from_utf8(buf).unwrap(), msg);
}

fn connect(addr: SocketAddr) -> std::io::Result<TcpStream> {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5))
}

/// The host's first global IPv4 address (not loopback).
fn host_ip() -> Ipv4Addr {
    let out = Command::new("ip")
        .args(["-4", "-o", "addr", "show", "scope", "global"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter(|l| !l.contains(" rkt-") && !l.contains(" cni"))
        .find_map(|l| l.split_whitespace().nth(3)?.split('/').next()?.parse().ok())
        .expect("a global IPv4 address on the host")
}

fn in_cidr(ip: IpAddr, base: [u8; 4], prefix: u32) -> bool {
    let IpAddr::V4(ip) = ip else { return false };
    let mask = u32::MAX << (32 - prefix);
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(base)) & mask
}

fn nat_rules() -> String {
    let out = Command::new("iptables")
        .args(["-t", "nat", "-S"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn netns_create_exists_delete() {
    if !root_or_skip() {
        return;
    }
    struct Guard(PathBuf);
    impl Drop for Guard {
        fn drop(&mut self) {
            let _ = HostNetns.delete(&self.0);
        }
    }
    let path = netns_path(&format!("rkube-test-ns-{}", std::process::id()));
    let _guard = Guard(path.clone());
    let _ = HostNetns.delete(&path);
    assert!(!HostNetns.exists(&path));
    HostNetns.create(&path).unwrap();
    assert!(HostNetns.exists(&path));
    assert!(matches!(
        HostNetns.create(&path),
        Err(NetnsError::Exists(_))
    ));
    // A thread in it sees the namespace the file holds, not the host's.
    let ns_inode = |p: &str| std::fs::metadata(p).unwrap().ino();
    let inside = in_netns(&path, move || ns_inode("/proc/thread-self/ns/net")).unwrap();
    assert_eq!(inside, std::fs::metadata(&path).unwrap().ino());
    assert_ne!(inside, ns_inode("/proc/self/ns/net"));
    // `ip netns` sees it too.
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    let list = Command::new("ip").args(["netns", "list"]).output().unwrap();
    assert!(String::from_utf8_lossy(&list.stdout).contains(&name));
    HostNetns.delete(&path).unwrap();
    assert!(!HostNetns.exists(&path));
    assert!(!path.exists());
    HostNetns.delete(&path).unwrap();
}

#[test]
fn two_pods_reach_each_other_and_the_host_reaches_both() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::new("two", "10.250.1.0/24");
    let a = net.sandbox("a", vec![]);
    let b = net.sandbox("b", vec![]);
    let start = Instant::now();
    let sa = net.cni.setup(&a).unwrap();
    let first = start.elapsed();
    let start = Instant::now();
    let sb = net.cni.setup(&b).unwrap();
    let second = start.elapsed();
    eprintln!("setup took {first:?} (first, creates the bridge) and {second:?}");

    assert_eq!(sa.ips.len(), 1);
    assert_eq!(sb.ips.len(), 1);
    assert_ne!(sa.ips[0], sb.ips[0]);
    for s in [&sa, &sb] {
        assert!(in_cidr(s.ips[0], [10, 250, 1, 0], 24), "{:?}", s.ips);
        assert_eq!(s.gateway, Some("10.250.1.1".parse().unwrap()));
        assert_eq!(s.interface, "eth0");
        assert!(s.mac.is_some());
    }
    net.cni.check(&a).unwrap();
    let versions = net.cni.plugin_versions("bridge").unwrap();
    assert!(
        versions.supported_versions.iter().any(|v| v == "1.0.0"),
        "{versions:?}"
    );

    // Host -> each pod.
    let port_a = echo_server_in(&a.netns_path, SocketAddr::new(sa.ips[0], 8080)).port();
    let port_b = echo_server_in(&b.netns_path, SocketAddr::new(sb.ips[0], 8080)).port();
    assert_echo(
        connect(SocketAddr::new(sa.ips[0], port_a)).unwrap(),
        "host to a",
    );
    assert_echo(
        connect(SocketAddr::new(sb.ips[0], port_b)).unwrap(),
        "host to b",
    );

    // Pod A -> pod B, from inside A's namespace.
    let b_addr = SocketAddr::new(sb.ips[0], port_b);
    let conn = in_netns(&a.netns_path, move || connect(b_addr))
        .unwrap()
        .unwrap();
    assert_echo(conn, "a to b");
}

#[test]
fn host_port_reaches_the_pod_through_portmap() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::new("hp", "10.250.2.0/24");
    let mapping = PortMapping {
        host_port: 31081,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: None,
    };
    let a = net.sandbox("a", vec![mapping]);
    let status = net.cni.setup(&a).unwrap();
    echo_server_in(&a.netns_path, SocketAddr::new(status.ips[0], 80));
    assert!(
        nat_rules().contains("--dport 31081"),
        "portmap DNAT rule present"
    );

    // Via the host's own address (OUTPUT -> CNI-HOSTPORT-DNAT).
    let host = SocketAddr::new(IpAddr::V4(host_ip()), 31081);
    assert_echo(connect(host).unwrap(), "via host ip");
    // Via 127.0.0.1: portmap (snat: true) sets route_localnet on the bridge
    // and masquerades 127.0.0.1 sources, so this works too.
    assert_echo(
        connect("127.0.0.1:31081".parse().unwrap()).unwrap(),
        "via localhost",
    );

    net.cni.teardown(&a).unwrap();
    assert!(
        !nat_rules().contains("--dport 31081"),
        "portmap rules removed on DEL"
    );
}

#[test]
fn teardown_releases_the_ip_and_del_twice_is_fine() {
    if !root_or_skip() {
        return;
    }
    // A /30: .1 is the gateway, so exactly one pod address (.2).
    let mut net = Net::with_masquerade("rel", "10.250.3.0/30", Masquerade::PerPod);
    let a = net.sandbox("a", vec![]);
    let b = net.sandbox("b", vec![]);
    let sa = net.cni.setup(&a).unwrap();
    assert_eq!(sa.ips, vec!["10.250.3.2".parse::<IpAddr>().unwrap()]);
    assert!(net.ipam_file(sa.ips[0]).exists());

    // The range is full: a clear error from host-local, and nothing leaked.
    let err = net.cni.setup(&b).unwrap_err().to_string();
    assert!(err.contains("bridge ADD failed"), "{err}");
    assert!(err.contains("no IP addresses available"), "{err}");

    let masq = format!("id: \\\"{}\\\"", a.id);
    assert!(nat_rules().contains(&masq), "ipMasq rule for a");
    net.cni.teardown(&a).unwrap();
    assert!(
        !net.ipam_file(sa.ips[0]).exists(),
        "host-local released the IP"
    );
    assert!(!nat_rules().contains(&masq), "ipMasq rule removed");
    net.cni.teardown(&a).unwrap();

    // DEL of a sandbox never set up, and with its netns already gone.
    HostNetns.delete(&b.netns_path).unwrap();
    net.cni.teardown(&b).unwrap();
    HostNetns.create(&b.netns_path).unwrap();

    // The released address is handed out again.
    let sb = net.cni.setup(&b).unwrap();
    assert_eq!(sb.ips, sa.ips);
}

#[test]
fn del_after_an_agent_restart_uses_the_cached_result_and_config() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::new("rst", "10.250.4.0/24");
    let mapping = PortMapping {
        host_port: 31082,
        container_port: 80,
        protocol: Protocol::Tcp,
        host_ip: Some(IpAddr::V4(Ipv4Addr::LOCALHOST)),
    };
    let a = net.sandbox("a", vec![mapping]);
    let status = net.cni.setup(&a).unwrap();
    assert!(nat_rules().contains("--dport 31082"));

    // "Restart": a new Cni whose configured network has since changed (a
    // conf dir with another network). DEL must still use what ADD used.
    let conf_dir = net.dir.path().join("conf");
    std::fs::create_dir_all(&conf_dir).unwrap();
    std::fs::write(
        conf_dir.join("10-other.conflist"),
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "other",
            "plugins": [{"type": "ptp", "ipam": {
                "type": "host-local",
                "subnet": "10.250.99.0/24",
                "dataDir": net.dir.path().join("ipam-other"),
            }}],
        })
        .to_string(),
    )
    .unwrap();
    let restarted = Cni::new(CniConfig {
        plugin_dirs: vec!["/usr/lib/cni".into()],
        network: NetworkSource::ConfDir(conf_dir),
        cache_dir: net.dir.path().join("cache"),
        enable_ip_forward: false,
    })
    .unwrap();
    assert_eq!(restarted.network().name, "other");
    assert_eq!(restarted.cached_status(&a).unwrap().ips, status.ips);
    // As after a reboot, the netns is gone too (CNI_NETNS is then empty).
    HostNetns.delete(&a.netns_path).unwrap();
    let mut sb = a.clone();
    sb.port_mappings.clear();
    restarted.teardown(&sb).unwrap();
    assert!(
        !net.ipam_file(status.ips[0]).exists(),
        "IP released in the original network"
    );
    assert!(
        !nat_rules().contains("--dport 31082"),
        "hostPort rules removed"
    );
    assert!(restarted.cached_status(&a).is_none());
    restarted.teardown(&sb).unwrap();
}

#[test]
fn connect_tcp_in_netns_reaches_a_server_on_the_pods_loopback() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::new("pf", "10.250.5.0/24");
    let a = net.sandbox("a", vec![]);
    net.cni.setup(&a).unwrap();
    let addr = echo_server_in(&a.netns_path, "127.0.0.1:0".parse().unwrap());
    let conn = rkube_cni::connect_tcp_in_netns(&a.netns_path, addr).unwrap();
    assert_echo(conn, "port-forward");
}

#[test]
fn setup_latency() {
    if !root_or_skip() {
        return;
    }
    let mut net = Net::new("lat", "10.250.6.0/24");
    let warm = net.sandbox("warm", vec![]);
    net.cni.setup(&warm).unwrap();
    let mut times = Vec::new();
    let mut del_times = Vec::new();
    for i in 0..5 {
        let sb = net.sandbox(&format!("s{i}"), vec![]);
        let start = Instant::now();
        net.cni.setup(&sb).unwrap();
        times.push(start.elapsed());
        let start = Instant::now();
        net.cni.teardown(&sb).unwrap();
        del_times.push(start.elapsed());
    }
    let hp = net.sandbox(
        "hp",
        vec![PortMapping {
            host_port: 31083,
            container_port: 80,
            protocol: Protocol::Tcp,
            host_ip: None,
        }],
    );
    let start = Instant::now();
    net.cni.setup(&hp).unwrap();
    let with_portmap = start.elapsed();
    let start = Instant::now();
    let ns = netns_path(&format!("rkube-test-lat-{}", std::process::id()));
    HostNetns.create(&ns).unwrap();
    let create = start.elapsed();
    HostNetns.delete(&ns).unwrap();
    // Ten sandboxes at once, as when a Deployment scales up.
    let batch: Vec<SandboxNetwork> = (0..10)
        .map(|i| net.sandbox(&format!("p{i}"), vec![]))
        .collect();
    let start = Instant::now();
    let parallel: Vec<Duration> = std::thread::scope(|s| {
        let handles: Vec<_> = batch
            .iter()
            .map(|sb| {
                let cni = &net.cni;
                s.spawn(move || {
                    let t = Instant::now();
                    cni.setup(sb).unwrap();
                    t.elapsed()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let wall = start.elapsed();
    eprintln!(
        "netns create {create:?}; setup (no hostPort) {times:?}; teardown {del_times:?}; \
         setup with a hostPort {with_portmap:?}; 10 concurrent setups in {wall:?}: {parallel:?}"
    );
}

/// A namespace outside the pod network, joined to the host by a veth pair:
/// host side `<net>.1`, inside `<net>.2`, and no route back to pods.
struct Outside {
    path: PathBuf,
    host_if: String,
}

impl Outside {
    fn new(tag: &str, net: &str) -> Self {
        let name = format!("rkube-test-out-{tag}-{}", std::process::id());
        let path = netns_path(&name);
        let _ = HostNetns.delete(&path);
        HostNetns.create(&path).unwrap();
        let host_if = format!("rko-{tag}");
        let _ = Command::new("ip").args(["link", "del", &host_if]).status();
        let outside = Self { path, host_if };
        let run = |args: &[&str]| {
            let st = Command::new("ip").args(args).status().unwrap();
            assert!(st.success(), "ip {args:?}");
        };
        let h = outside.host_if.as_str();
        run(&[
            "link", "add", h, "type", "veth", "peer", "name", "eth0", "netns", &name,
        ]);
        run(&["addr", "add", &format!("{net}.1/24"), "dev", h]);
        run(&["link", "set", h, "up"]);
        run(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{net}.2/24"),
            "dev",
            "eth0",
        ]);
        run(&["-n", &name, "link", "set", "eth0", "up"]);
        run(&["-n", &name, "link", "set", "lo", "up"]);
        outside
    }
}

impl Drop for Outside {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .status();
        let _ = HostNetns.delete(&self.path);
    }
}

/// A pod connects to a server outside the pod CIDR; the server must see
/// the host's address (masqueraded), else its reply would have no route.
fn assert_masqueraded(tag: &str, cidr: &str, outside_net: &str, masquerade: Masquerade) {
    let mut net = Net::with_masquerade(tag, cidr, masquerade);
    let outside = Outside::new(tag, outside_net);
    let a = net.sandbox("a", vec![]);
    net.cni.setup(&a).unwrap();
    let server: SocketAddr = format!("{outside_net}.2:0").parse().unwrap();
    let listener = in_netns(&outside.path, move || TcpListener::bind(server))
        .unwrap()
        .unwrap();
    let server = listener.local_addr().unwrap();
    let accept = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer.ip()));
    let conn = in_netns(&a.netns_path, move || connect(server)).unwrap();
    assert!(conn.is_ok(), "pod reaches {server}: {conn:?}");
    let peer = accept.join().unwrap().unwrap();
    assert_eq!(
        peer.to_string(),
        format!("{outside_net}.1"),
        "source was masqueraded"
    );
}

#[test]
fn traffic_leaving_the_pod_cidr_is_masqueraded_by_the_node_rule() {
    if !root_or_skip() {
        return;
    }
    assert_masqueraded("mqn", "10.250.7.0/24", "10.250.207", Masquerade::Node);
    assert!(
        !nat_rules().contains("10.250.7.0/24"),
        "node rule removed on cleanup"
    );
}

#[test]
fn traffic_leaving_the_pod_cidr_is_masqueraded_per_pod() {
    if !root_or_skip() {
        return;
    }
    assert_masqueraded("mqp", "10.250.8.0/24", "10.250.208", Masquerade::PerPod);
}
