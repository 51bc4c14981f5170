//! A pod's hostname, `/etc/hosts` and `/etc/resolv.conf`, as upstream's
//! kubelet writes them.

use k8s_openapi::api::core::v1::Pod;

/// The pod's hostname: `spec.hostname`, else its name (at most 63
/// characters, without a trailing `-` or `.`).
pub fn hostname(pod: &Pod) -> String {
    if let Some(h) = pod
        .spec
        .as_ref()
        .and_then(|s| s.hostname.as_deref())
        .filter(|h| !h.is_empty())
    {
        return h.to_string();
    }
    let name = pod.metadata.name.as_deref().unwrap_or("pod");
    let mut h: String = name.chars().take(63).collect();
    while h.ends_with(['-', '.']) {
        h.pop();
    }
    h
}

/// The pod's fully qualified name when it has a subdomain.
fn fqdn(pod: &Pod, cluster_domain: &str) -> Option<String> {
    let sub = pod.spec.as_ref()?.subdomain.as_deref()?;
    if sub.is_empty() {
        return None;
    }
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    Some(format!("{}.{sub}.{ns}.svc.{cluster_domain}", hostname(pod)))
}

fn host_aliases(pod: &Pod) -> String {
    let aliases = pod.spec.as_ref().and_then(|s| s.host_aliases.as_ref());
    let Some(aliases) = aliases.filter(|a| !a.is_empty()) else {
        return String::new();
    };
    let mut out = String::from("\n# Entries added by HostAliases.\n");
    for a in aliases {
        let names = a.hostnames.clone().unwrap_or_default().join("\t");
        out.push_str(&format!("{}\t{names}\n", a.ip));
    }
    out
}

/// `/etc/hosts` of a pod with its own network namespace and address
/// `pod_ip`; a `hostNetwork` pod gets `host_hosts` (the node's file) plus
/// its host aliases.
pub fn hosts_file(pod: &Pod, pod_ip: &str, cluster_domain: &str, host_hosts: &str) -> String {
    let host_network = pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut out = if host_network {
        let mut s = host_hosts.to_string();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    } else {
        let mut s = String::from(
            "# Kubernetes-managed hosts file.\n\
             127.0.0.1\tlocalhost\n\
             ::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\n\
             fe00::0\tip6-mcastprefix\n\
             fe00::1\tip6-allnodes\n\
             fe00::2\tip6-allrouters\n",
        );
        let h = hostname(pod);
        match fqdn(pod, cluster_domain) {
            Some(f) => s.push_str(&format!("{pod_ip}\t{f}\t{h}\n")),
            None => s.push_str(&format!("{pod_ip}\t{h}\n")),
        }
        s
    };
    out.push_str(&host_aliases(pod));
    out
}

/// Parsed resolver settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Resolv {
    nameservers: Vec<String>,
    searches: Vec<String>,
    options: Vec<String>,
}

fn parse_resolv(text: &str) -> Resolv {
    let mut r = Resolv::default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => r.nameservers.extend(words.next().map(str::to_string)),
            Some("search" | "domain") => r.searches = words.map(str::to_string).collect(),
            Some("options") => r.options.extend(words.map(str::to_string)),
            _ => {}
        }
    }
    r
}

/// `/etc/resolv.conf` of a pod from its `dnsPolicy` and `dnsConfig`.
/// `cluster_dns`: the cluster DNS service addresses (none yet: ClusterFirst
/// falls back to the node's resolver, as upstream's kubelet does without
/// `--cluster-dns`). `host_resolv`: the node's resolv.conf.
pub fn resolv_conf(
    pod: &Pod,
    cluster_dns: &[String],
    cluster_domain: &str,
    host_resolv: &str,
) -> String {
    let spec = pod.spec.as_ref();
    let policy = spec
        .and_then(|s| s.dns_policy.as_deref())
        .unwrap_or("ClusterFirst");
    let host_network = spec.and_then(|s| s.host_network).unwrap_or(false);
    let host = parse_resolv(host_resolv);
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let cluster_first = match policy {
        "ClusterFirst" => !host_network,
        "ClusterFirstWithHostNet" => true,
        _ => false,
    };
    let mut r = match policy {
        "None" => Resolv::default(),
        _ if cluster_first && !cluster_dns.is_empty() => {
            let mut searches = vec![
                format!("{ns}.svc.{cluster_domain}"),
                format!("svc.{cluster_domain}"),
                cluster_domain.to_string(),
            ];
            searches.extend(host.searches.iter().cloned());
            Resolv {
                nameservers: cluster_dns.to_vec(),
                searches,
                options: vec!["ndots:5".into()],
            }
        }
        _ => host,
    };
    if let Some(cfg) = spec.and_then(|s| s.dns_config.as_ref()) {
        for n in cfg.nameservers.iter().flatten() {
            if !r.nameservers.contains(n) {
                r.nameservers.push(n.clone());
            }
        }
        for s in cfg.searches.iter().flatten() {
            if !r.searches.contains(s) {
                r.searches.push(s.clone());
            }
        }
        for o in cfg.options.iter().flatten() {
            let opt = match &o.value {
                Some(v) => format!("{}:{v}", o.name.as_deref().unwrap_or_default()),
                None => o.name.clone().unwrap_or_default(),
            };
            let key = opt.split(':').next().unwrap_or_default().to_string();
            r.options
                .retain(|x| x.split(':').next() != Some(key.as_str()));
            r.options.push(opt);
        }
    }
    let mut out = String::new();
    if !r.searches.is_empty() {
        out.push_str(&format!("search {}\n", r.searches.join(" ")));
    }
    for n in r.nameservers.iter().take(3) {
        out.push_str(&format!("nameserver {n}\n"));
    }
    if !r.options.is_empty() {
        out.push_str(&format!("options {}\n", r.options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{HostAlias, PodDNSConfig, PodDNSConfigOption, PodSpec};

    fn pod(spec: PodSpec) -> Pod {
        let mut p = Pod::default();
        p.metadata.name = Some("web-7d9f".into());
        p.metadata.namespace = Some("shop".into());
        p.spec = Some(spec);
        p
    }

    #[test]
    fn hosts_with_subdomain_and_aliases() {
        let p = pod(PodSpec {
            hostname: Some("db-0".into()),
            subdomain: Some("db".into()),
            host_aliases: Some(vec![HostAlias {
                ip: "1.2.3.4".into(),
                hostnames: Some(vec!["foo".into(), "bar".into()]),
            }]),
            ..Default::default()
        });
        let h = hosts_file(&p, "10.0.0.9", "cluster.local", "");
        assert!(h.starts_with("# Kubernetes-managed hosts file.\n127.0.0.1\tlocalhost\n"));
        assert!(
            h.contains("10.0.0.9\tdb-0.db.shop.svc.cluster.local\tdb-0\n"),
            "{h}"
        );
        assert!(h.ends_with("\n# Entries added by HostAliases.\n1.2.3.4\tfoo\tbar\n"));
        let hn = pod(PodSpec {
            host_network: Some(true),
            ..Default::default()
        });
        assert_eq!(
            hosts_file(&hn, "", "cluster.local", "127.0.0.1 me"),
            "127.0.0.1 me\n"
        );
        assert_eq!(hostname(&hn), "web-7d9f");
    }

    #[test]
    fn resolv_policies() {
        let host = "search corp.example\nnameserver 192.168.0.1\noptions edns0\n";
        let p = pod(PodSpec::default());
        assert_eq!(
            resolv_conf(&p, &["10.96.0.10".into()], "cluster.local", host),
            "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example\n\
             nameserver 10.96.0.10\noptions ndots:5\n"
        );
        assert_eq!(
            resolv_conf(&p, &[], "cluster.local", host),
            "search corp.example\nnameserver 192.168.0.1\noptions edns0\n",
            "no cluster DNS: the node's resolver"
        );
        let none = pod(PodSpec {
            dns_policy: Some("None".into()),
            dns_config: Some(PodDNSConfig {
                nameservers: Some(vec!["8.8.8.8".into()]),
                searches: Some(vec!["a.b".into()]),
                options: Some(vec![PodDNSConfigOption {
                    name: Some("ndots".into()),
                    value: Some("2".into()),
                }]),
            }),
            ..Default::default()
        });
        assert_eq!(
            resolv_conf(&none, &["10.96.0.10".into()], "cluster.local", host),
            "search a.b\nnameserver 8.8.8.8\noptions ndots:2\n"
        );
    }
}
