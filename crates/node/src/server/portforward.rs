//! Port-forward over SPDY/3.1, as kubelet serves it: for each forwarded
//! connection the client opens an `error` and a `data` stream (headers
//! `streamtype`, `port`, `requestid`); the data stream carries the TCP bytes
//! both ways, and the error stream a message if forwarding failed, then is
//! closed. Runs over any byte stream: a WebSocket tunnel
//! (`SPDY/3.1+portforward.k8s.io`) or a plain SPDY upgrade.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::backend::{PodRef, StreamingBackend};
use super::spdy::{self, Frame, HeaderCompressor, HeaderDecompressor, FLAG_FIN};

/// Protocol of a plain SPDY upgrade (`X-Stream-Protocol-Version`).
pub const PROTOCOL: &str = "portforward.k8s.io";

#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
    started: bool,
}

/// What the reader knows of one open stream.
struct Open {
    request: String,
    /// Bytes from the client for the target (data streams only).
    to_target: Option<mpsc::Sender<Bytes>>,
    pending: Option<mpsc::Receiver<Bytes>>,
}

fn reset(stream_id: u32, status: u32) -> Frame {
    Frame::RstStream { stream_id, status }
}

/// Serves one port-forward connection until the client leaves.
pub async fn serve<IO>(io: IO, backend: Arc<dyn StreamingBackend>, pod: PodRef)
where
    IO: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut comp = HeaderCompressor::default();
        let mut buf = BytesMut::new();
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            if let Err(e) = spdy::encode(&f, &mut comp, &mut buf) {
                tracing::debug!(error = %e, "cannot encode SPDY frame");
                break;
            }
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });

    let mut dec = HeaderDecompressor::default();
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let mut streams: HashMap<u32, Open> = HashMap::new();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut tasks = JoinSet::new();
    'conn: loop {
        let frame = loop {
            match spdy::decode(&mut buf, &mut dec) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!(error = %e, "bad SPDY frame; closing");
                    let _ = out
                        .send(Frame::GoAway {
                            last_good: 0,
                            status: 1,
                        })
                        .await;
                    break 'conn;
                }
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break 'conn,
                Ok(_) => {}
            }
        };
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let kind = spdy::header(&headers, "streamtype").unwrap_or("");
                let port = spdy::header(&headers, "port").and_then(|p| p.parse::<u16>().ok());
                let (Some(port), "error" | "data") = (port.filter(|p| *p > 0), kind) else {
                    let _ = out.send(reset(stream_id, spdy::RST_PROTOCOL_ERROR)).await;
                    continue;
                };
                if streams.contains_key(&stream_id) {
                    let _ = out.send(reset(stream_id, spdy::RST_PROTOCOL_ERROR)).await;
                    continue;
                }
                let request = spdy::header(&headers, "requestid")
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("port-{port}"));
                let pair = pairs.entry(request.clone()).or_default();
                pair.port = port;
                let mut open = Open {
                    request: request.clone(),
                    to_target: None,
                    pending: None,
                };
                if kind == "data" {
                    pair.data = Some(stream_id);
                    let (tx, rx) = mpsc::channel(16);
                    open.to_target = Some(tx);
                    open.pending = Some(rx);
                } else {
                    pair.error = Some(stream_id);
                }
                let _ = out
                    .send(Frame::SynReply {
                        stream_id,
                        flags: 0,
                        headers: vec![],
                    })
                    .await;
                streams.insert(stream_id, open);
                if let (Some(data), Some(error), false) = (pair.data, pair.error, pair.started) {
                    pair.started = true;
                    let port = pair.port;
                    let incoming = streams
                        .get_mut(&data)
                        .and_then(|o| o.pending.take())
                        .expect("data stream registered above or before");
                    tasks.spawn(forward(
                        backend.clone(),
                        pod.clone(),
                        port,
                        data,
                        error,
                        out.clone(),
                        incoming,
                    ));
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let Some(open) = streams.get_mut(&stream_id) else {
                    continue;
                };
                if !data.is_empty() {
                    if let Some(tx) = &open.to_target {
                        if tx.send(data).await.is_err() {
                            open.to_target = None;
                        }
                    }
                }
                if flags & FLAG_FIN != 0 {
                    open.to_target = None;
                }
            }
            Frame::RstStream { stream_id, .. } => {
                if let Some(open) = streams.remove(&stream_id) {
                    let done = pairs.get(&open.request).is_some_and(|p| {
                        p.data.is_none_or(|d| !streams.contains_key(&d))
                            && p.error.is_none_or(|e| !streams.contains_key(&e))
                    });
                    if done {
                        pairs.remove(&open.request);
                    }
                }
            }
            Frame::Ping(id) => {
                let _ = out.send(Frame::Ping(id)).await;
            }
            Frame::GoAway { .. } => break,
            _ => {}
        }
        // Reap finished forwards without blocking.
        while tasks.try_join_next().is_some() {}
    }
    tasks.abort_all();
    drop(out);
    drop(streams);
    let _ = writer.await;
}

/// Forwards one connection: target bytes to the data stream and back; an
/// error message (if any) on the error stream, which is then closed.
async fn forward(
    backend: Arc<dyn StreamingBackend>,
    pod: PodRef,
    port: u16,
    data_id: u32,
    error_id: u32,
    out: mpsc::Sender<Frame>,
    mut incoming: mpsc::Receiver<Bytes>,
) {
    let failure = match backend.port_forward(&pod, port).await {
        Err(e) => {
            fin(&out, data_id).await;
            Some(e.to_string())
        }
        Ok(conn) => {
            let (mut r, mut w) = tokio::io::split(conn);
            let up = async {
                while let Some(b) = incoming.recv().await {
                    if w.write_all(&b).await.is_err() {
                        return;
                    }
                }
                let _ = w.shutdown().await;
            };
            let down = async {
                let mut buf = vec![0u8; 32 * 1024];
                let result = loop {
                    match r.read(&mut buf).await {
                        Ok(0) => break None,
                        Ok(n) => {
                            let f = Frame::Data {
                                stream_id: data_id,
                                flags: 0,
                                data: Bytes::copy_from_slice(&buf[..n]),
                            };
                            if out.send(f).await.is_err() {
                                break None;
                            }
                        }
                        Err(e) => break Some(e.to_string()),
                    }
                };
                fin(&out, data_id).await;
                result
            };
            futures::join!(up, down).1
        }
    };
    if let Some(e) = failure {
        let msg = format!(
            "error forwarding port {port} to pod {}/{}: {e}",
            pod.namespace, pod.name
        );
        let _ = out
            .send(Frame::Data {
                stream_id: error_id,
                flags: 0,
                data: Bytes::from(msg),
            })
            .await;
    }
    fin(&out, error_id).await;
}

/// Ends a stream (an empty data frame with FIN); a closed connection is
/// already ended.
async fn fin(out: &mpsc::Sender<Frame>, stream_id: u32) {
    let _ = out
        .send(Frame::Data {
            stream_id,
            flags: FLAG_FIN,
            data: Bytes::new(),
        })
        .await;
}
