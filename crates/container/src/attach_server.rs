//! The monitor's side of attach ([`crate::attach_proto`]): a [`Hub`] that
//! accepts clients on the attach socket, broadcasts the container's output
//! to them (the monitor still logs it), forwards their input to the
//! container's stdin and their terminal sizes to its pty.
//!
//! Stdin follows containerd's CRI attach: input is forwarded only if the
//! container was created with stdin. When a client that attached stdin
//! closes it (or goes away), then with `stdinOnce` and no terminal the
//! container's stdin is closed for good and the client keeps receiving
//! output until the container exits; otherwise that client's session ends
//! (the monitor closes the connection). When the container exits, every
//! client gets EOF after the output sent so far.
//!
//! Threads, not async: the monitor is a small blocking process. Each client
//! has a reader thread and a writer thread fed by a bounded queue, so a slow
//! client never holds up logging; one that falls too far behind is dropped.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use bytes::{Bytes, BytesMut};

use crate::attach_proto::{decode, AttachStreams, Frame};

/// Frames queued per client before it counts as stuck and is dropped.
const QUEUE: usize = 256;
/// How long a write to a client may block (so the monitor can finish).
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Sets a terminal's size (the container's pty master).
pub trait Resizer: Send + Sync {
    /// Applies `width` × `height`.
    fn resize(&self, width: u16, height: u16) -> std::io::Result<()>;
}

/// How the container's stdio is set up.
#[derive(Debug, Clone, Copy, Default)]
pub struct HubConfig {
    /// The container has a stdin clients may write to.
    pub stdin: bool,
    /// Close the container's stdin when the first client's stdin ends.
    pub stdin_once: bool,
    /// The container has a terminal.
    pub tty: bool,
}

struct Client {
    id: u64,
    streams: AttachStreams,
    tx: SyncSender<Bytes>,
    writer: JoinHandle<()>,
}

#[derive(Default)]
struct State {
    next_id: u64,
    clients: Vec<Client>,
    closed: bool,
}

struct Inner {
    cfg: HubConfig,
    state: Mutex<State>,
    stdin: Mutex<Option<Box<dyn Write + Send>>>,
    resizer: Option<Box<dyn Resizer>>,
}

/// The attach clients of one container; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Hub {
    /// A hub writing input to `stdin` and sizes to `resizer`.
    pub fn new(
        cfg: HubConfig,
        stdin: Option<Box<dyn Write + Send>>,
        resizer: Option<Box<dyn Resizer>>,
    ) -> Self {
        Hub {
            inner: Arc::new(Inner {
                cfg,
                state: Mutex::new(State::default()),
                stdin: Mutex::new(stdin.filter(|_| cfg.stdin)),
                resizer,
            }),
        }
    }

    /// Accepts clients on `listener` in a background thread.
    pub fn serve(&self, listener: UnixListener) {
        let hub = self.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(c) => hub.add_client(c),
                    Err(e) => eprintln!("container-monitor: attach accept: {e}"),
                }
            }
        });
    }

    /// Serves one client connection (its reader runs in a new thread).
    pub fn add_client(&self, conn: UnixStream) {
        let hub = self.clone();
        std::thread::spawn(move || hub.read_client(conn));
    }

    fn read_client(&self, mut conn: UnixStream) {
        let mut buf = BytesMut::new();
        let mut chunk = vec![0u8; 32 * 1024];
        let mut id = None;
        let mut stdin_open = false;
        loop {
            let frame = match decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => match conn.read(&mut chunk) {
                    Ok(0) => break,
                    Ok(n) => {
                        buf.extend_from_slice(&chunk[..n]);
                        continue;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                },
                Err(e) => {
                    eprintln!("container-monitor: attach: {e}");
                    break;
                }
            };
            match (frame, id) {
                (Frame::Hello(streams), None) => {
                    let Some(new) = self.register(&conn, streams) else {
                        return;
                    };
                    id = Some(new);
                    stdin_open = streams.stdin && self.inner.cfg.stdin;
                }
                (Frame::Stdin(data), Some(_)) if stdin_open => {
                    if let Some(w) = lock(&self.inner.stdin).as_mut() {
                        let _ = w.write_all(&data).and_then(|()| w.flush());
                    }
                }
                (Frame::CloseStdin, Some(me)) if stdin_open => {
                    stdin_open = false;
                    if !self.stdin_ended(me) {
                        return;
                    }
                }
                (Frame::Resize { width, height }, Some(_)) => {
                    if let Some(r) = &self.inner.resizer {
                        let _ = r.resize(width, height);
                    }
                }
                (Frame::Stdin(_) | Frame::CloseStdin, Some(_)) => {}
                _ => {
                    eprintln!("container-monitor: attach: unexpected frame");
                    break;
                }
            }
        }
        // The client went away (or broke the protocol).
        if let Some(me) = id {
            if stdin_open {
                self.stdin_ended(me);
            }
            self.remove(me);
        }
        let _ = conn.shutdown(Shutdown::Both);
    }

    /// A client's stdin ended: closes the container's stdin (stdinOnce
    /// without a terminal; the client stays) or detaches the client.
    /// Returns whether the client stays.
    fn stdin_ended(&self, id: u64) -> bool {
        let cfg = self.inner.cfg;
        if cfg.stdin_once && !cfg.tty {
            drop(lock(&self.inner.stdin).take());
            true
        } else {
            self.remove(id);
            false
        }
    }

    fn register(&self, conn: &UnixStream, streams: AttachStreams) -> Option<u64> {
        let mut out = conn.try_clone().ok()?;
        let _ = out.set_write_timeout(Some(WRITE_TIMEOUT));
        let mut state = lock(&self.inner.state);
        if state.closed {
            return None;
        }
        let id = state.next_id;
        state.next_id += 1;
        let (tx, rx) = sync_channel::<Bytes>(QUEUE);
        let _ = tx.try_send(Frame::Ready.encode());
        let writer = std::thread::spawn(move || {
            for frame in rx {
                if out.write_all(&frame).is_err() {
                    break;
                }
            }
            let _ = out.shutdown(Shutdown::Both);
        });
        state.clients.push(Client {
            id,
            streams,
            tx,
            writer,
        });
        Some(id)
    }

    /// Ends a client's session: what was queued is still sent, then EOF.
    fn remove(&self, id: u64) {
        let mut state = lock(&self.inner.state);
        state.clients.retain(|c| c.id != id);
    }

    /// Sends output to every client that wants this stream.
    pub fn broadcast(&self, stderr: bool, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let frames: Vec<Bytes> = Frame::output(stderr, data).map(|f| f.encode()).collect();
        let mut state = lock(&self.inner.state);
        state.clients.retain(|c| {
            let wanted = if stderr {
                c.streams.stderr
            } else {
                c.streams.stdout
            };
            !wanted
                || frames.iter().all(|f| match c.tx.try_send(f.clone()) {
                    Ok(()) => true,
                    Err(TrySendError::Full(_)) => {
                        eprintln!("container-monitor: attach client too slow, dropped");
                        false
                    }
                    Err(TrySendError::Disconnected(_)) => false,
                })
        });
    }

    /// The container ended: closes its stdin, ends every session once its
    /// queued output is written, and refuses new clients.
    pub fn close(&self) {
        drop(lock(&self.inner.stdin).take());
        let clients = {
            let mut state = lock(&self.inner.state);
            state.closed = true;
            std::mem::take(&mut state.clients)
        };
        for c in clients {
            drop(c.tx);
            let _ = c.writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A stdin sink that reports writes and its own drop (the close).
    struct Sink(mpsc::Sender<Option<Vec<u8>>>);
    impl Write for Sink {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            let _ = self.0.send(Some(b.to_vec()));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl Drop for Sink {
        fn drop(&mut self) {
            let _ = self.0.send(None);
        }
    }

    struct Sizes(mpsc::Sender<(u16, u16)>);
    impl Resizer for Sizes {
        fn resize(&self, w: u16, h: u16) -> std::io::Result<()> {
            let _ = self.0.send((w, h));
            Ok(())
        }
    }

    struct TestClient(UnixStream, BytesMut);

    impl TestClient {
        fn connect(hub: &Hub, streams: AttachStreams) -> TestClient {
            let (ours, theirs) = UnixStream::pair().unwrap();
            hub.add_client(theirs);
            let mut c = TestClient(ours, BytesMut::new());
            c.send(Frame::Hello(streams));
            c
        }
        /// Connects and waits until the hub has registered the client.
        fn ready(hub: &Hub, streams: AttachStreams) -> TestClient {
            let mut c = Self::connect(hub, streams);
            assert_eq!(c.next(), Some(Frame::Ready));
            c
        }
        fn send(&mut self, f: Frame) {
            self.0.write_all(&f.encode()).unwrap();
        }
        /// The next frame, or `None` at EOF.
        fn next(&mut self) -> Option<Frame> {
            loop {
                if let Some(f) = decode(&mut self.1).unwrap() {
                    return Some(f);
                }
                let mut b = [0u8; 4096];
                match self.0.read(&mut b).unwrap() {
                    0 => return None,
                    n => self.1.extend_from_slice(&b[..n]),
                }
            }
        }
    }

    fn all() -> AttachStreams {
        AttachStreams {
            stdin: true,
            stdout: true,
            stderr: true,
        }
    }

    fn hub(cfg: HubConfig) -> (Hub, mpsc::Receiver<Option<Vec<u8>>>) {
        let (tx, rx) = mpsc::channel();
        (Hub::new(cfg, Some(Box::new(Sink(tx))), None), rx)
    }

    /// Waits until the hub has `n` clients (registration is asynchronous).
    fn wait_clients(hub: &Hub, n: usize) {
        while lock(&hub.inner.state).clients.len() != n {
            std::thread::yield_now();
        }
    }

    #[test]
    fn output_is_broadcast_per_stream_and_ends_with_eof() {
        let (hub, _) = hub(HubConfig::default());
        let mut a = TestClient::ready(&hub, all());
        let mut b = TestClient::ready(
            &hub,
            AttachStreams {
                stdout: true,
                ..Default::default()
            },
        );
        wait_clients(&hub, 2);
        hub.broadcast(true, b"err");
        hub.broadcast(false, b"out");
        hub.close();
        assert_eq!(a.next(), Some(Frame::Stderr(Bytes::from_static(b"err"))));
        assert_eq!(a.next(), Some(Frame::Stdout(Bytes::from_static(b"out"))));
        assert_eq!(a.next(), None);
        assert_eq!(b.next(), Some(Frame::Stdout(Bytes::from_static(b"out"))));
        assert_eq!(b.next(), None);
        // After the end, new clients get EOF at once.
        let mut late = TestClient::connect(&hub, all());
        assert_eq!(late.next(), None);
    }

    #[test]
    fn stdin_once_closes_the_container_stdin_and_keeps_the_session() {
        let (hub, writes) = hub(HubConfig {
            stdin: true,
            stdin_once: true,
            tty: false,
        });
        let mut a = TestClient::ready(&hub, all());
        a.send(Frame::Stdin(Bytes::from_static(b"line\n")));
        a.send(Frame::CloseStdin);
        assert_eq!(writes.recv().unwrap(), Some(b"line\n".to_vec()));
        assert_eq!(writes.recv().unwrap(), None, "stdin closed");
        wait_clients(&hub, 1);
        hub.broadcast(false, b"got:line\n");
        hub.close();
        assert_eq!(
            a.next(),
            Some(Frame::Stdout(Bytes::from_static(b"got:line\n")))
        );
        assert_eq!(a.next(), None);
    }

    #[test]
    fn without_stdin_once_closing_stdin_detaches_the_client() {
        let (hub, writes) = hub(HubConfig {
            stdin: true,
            stdin_once: false,
            tty: true,
        });
        let mut a = TestClient::ready(&hub, all());
        let mut watcher = TestClient::ready(
            &hub,
            AttachStreams {
                stdout: true,
                ..Default::default()
            },
        );
        a.send(Frame::Stdin(Bytes::from_static(b"x")));
        a.send(Frame::CloseStdin);
        assert_eq!(writes.recv().unwrap(), Some(b"x".to_vec()));
        assert_eq!(a.next(), None, "detached");
        // The container's stdin stays open for the next client.
        let mut b = TestClient::ready(&hub, all());
        b.send(Frame::Stdin(Bytes::from_static(b"y")));
        assert_eq!(writes.recv().unwrap(), Some(b"y".to_vec()));
        wait_clients(&hub, 2);
        hub.broadcast(false, b"still here");
        assert_eq!(
            watcher.next(),
            Some(Frame::Stdout(Bytes::from_static(b"still here")))
        );
        hub.close();
        assert_eq!(writes.recv().unwrap(), None);
    }

    #[test]
    fn input_is_ignored_without_container_stdin_and_resizes_apply() {
        let (tx, writes) = mpsc::channel();
        let (stx, sizes) = mpsc::channel();
        let hub = Hub::new(
            HubConfig {
                stdin: false,
                stdin_once: true,
                tty: true,
            },
            Some(Box::new(Sink(tx))),
            Some(Box::new(Sizes(stx))),
        );
        // The sink was never usable: it is dropped at once.
        assert_eq!(writes.recv().unwrap(), None);
        let mut a = TestClient::ready(&hub, all());
        a.send(Frame::Stdin(Bytes::from_static(b"ignored")));
        a.send(Frame::CloseStdin);
        a.send(Frame::Resize {
            width: 100,
            height: 30,
        });
        assert_eq!(sizes.recv().unwrap(), (100, 30));
        wait_clients(&hub, 1);
        hub.close();
        assert_eq!(a.next(), None);
    }

    #[test]
    fn a_vanished_client_counts_as_its_stdin_ending() {
        let (hub, writes) = hub(HubConfig {
            stdin: true,
            stdin_once: true,
            tty: false,
        });
        let a = TestClient::ready(&hub, all());
        wait_clients(&hub, 1);
        drop(a);
        assert_eq!(writes.recv().unwrap(), None);
        wait_clients(&hub, 0);
    }

    #[test]
    fn protocol_violations_end_the_session() {
        let (hub, _) = hub(HubConfig::default());
        let (mut ours, theirs) = UnixStream::pair().unwrap();
        hub.add_client(theirs);
        ours.write_all(&Frame::CloseStdin.encode()).unwrap();
        let mut b = [0u8; 8];
        assert_eq!(ours.read(&mut b).unwrap(), 0);
    }
}
