//! The WebSocket stream protocols of exec and attach (`v5.channel.k8s.io`,
//! `v4.channel.k8s.io`): binary messages whose first byte names a channel
//! (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize); v5 adds the close
//! signal `[255, channel]` (the client's stdin ended). The error channel
//! carries one `metav1.Status` when the command ends. Also the byte tunnel
//! under port-forward's `SPDY/3.1+portforward.k8s.io` (binary messages
//! carrying a byte stream).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::backend::{BackendError, ExecSession, TerminalSize};

pub const V5: &str = "v5.channel.k8s.io";
pub const V4: &str = "v4.channel.k8s.io";
/// Port-forward: SPDY/3.1 frames tunnelled in binary messages.
pub const PORT_FORWARD_TUNNEL: &str = "SPDY/3.1+portforward.k8s.io";

pub const STDIN: u8 = 0;
pub const STDOUT: u8 = 1;
pub const STDERR: u8 = 2;
pub const ERROR: u8 = 3;
pub const RESIZE: u8 = 4;
pub const CLOSE: u8 = 255;

/// A message from the client that the protocol does not allow.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WsError {
    #[error("empty message")]
    Empty,
    #[error("malformed close signal")]
    BadClose,
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Data {
        channel: u8,
        data: Bytes,
    },
    /// v5: the client closed its side of `channel`.
    Close {
        channel: u8,
    },
}

/// Decodes one binary message (`v5` enables the close signal).
pub fn parse_message(v5: bool, msg: &[u8]) -> Result<Inbound, WsError> {
    let (&channel, rest) = msg.split_first().ok_or(WsError::Empty)?;
    if v5 && channel == CLOSE {
        return match rest {
            [c] => Ok(Inbound::Close { channel: *c }),
            _ => Err(WsError::BadClose),
        };
    }
    Ok(Inbound::Data {
        channel,
        data: Bytes::copy_from_slice(rest),
    })
}

/// One outgoing message on `channel`.
pub fn frame(channel: u8, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 1);
    b.put_u8(channel);
    b.extend_from_slice(data);
    b.freeze()
}

/// The `metav1.Status` sent on the error channel when a command ends, as
/// kubelet shapes it (kubectl exits with the `ExitCode` cause's code).
pub fn exit_status(result: &Result<i32, BackendError>, cmd: &[String]) -> Value {
    match result {
        Ok(0) => json!({"metadata": {}, "status": "Success"}),
        Ok(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command [{}], exit code {code}",
                cmd.join(" ")
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Err(e) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("Internal error occurred: {e}"),
            "reason": "InternalError",
            "code": 500,
            "details": {"causes": [{"message": e.to_string()}]},
        }),
    }
}

async fn pump(mut r: super::backend::Reader, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx
                    .send(Message::Binary(frame(channel, &buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}

/// Runs an exec/attach session over an upgraded WebSocket until the
/// process ends (then sends its status and closes) or the client goes.
pub async fn serve_exec<S>(ws: WebSocketStream<S>, v5: bool, session: ExecSession, cmd: Vec<String>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut inbound) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(64);
    let writer = tokio::spawn(async move {
        while let Some(m) = rx.recv().await {
            let close = matches!(m, Message::Close(_));
            if sink.send(m).await.is_err() || close {
                break;
            }
        }
    });
    // As kubelet: an empty message on the lowest writable channel tells the
    // client the streams are set up.
    let first = if session.stdout.is_some() {
        STDOUT
    } else if session.stderr.is_some() {
        STDERR
    } else {
        ERROR
    };
    let _ = tx.send(Message::Binary(frame(first, &[]))).await;

    let ExecSession {
        mut stdin,
        stdout,
        stderr,
        resize,
        exit,
    } = session;
    let mut reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = inbound.next().await {
            let bytes = match msg {
                Message::Binary(b) => b,
                Message::Close(_) => break,
                _ => continue,
            };
            match parse_message(v5, &bytes) {
                Ok(Inbound::Data {
                    channel: STDIN,
                    data,
                }) => {
                    if let Some(w) = stdin.as_mut() {
                        if w.write_all(&data).await.is_err() || w.flush().await.is_err() {
                            stdin = None;
                        }
                    }
                }
                Ok(Inbound::Data {
                    channel: RESIZE,
                    data,
                }) => {
                    if let (Some(r), Ok(size)) =
                        (&resize, serde_json::from_slice::<TerminalSize>(&data))
                    {
                        let _ = r.try_send(size);
                    }
                }
                Ok(Inbound::Close { channel: STDIN }) => {
                    if let Some(mut w) = stdin.take() {
                        let _ = w.shutdown().await;
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "bad stream message"),
            }
        }
    });

    let outputs = async {
        let mut pumps = Vec::new();
        if let Some(r) = stdout {
            pumps.push(tokio::spawn(pump(r, STDOUT, tx.clone())));
        }
        if let Some(r) = stderr {
            pumps.push(tokio::spawn(pump(r, STDERR, tx.clone())));
        }
        for p in pumps {
            let _ = p.await;
        }
    };
    let finished = async { futures::join!(outputs, exit).1 };
    tokio::select! {
        result = finished => {
            let status = exit_status(&result, &cmd);
            let _ = tx.send(Message::Binary(frame(ERROR, status.to_string().as_bytes()))).await;
            let _ = tx.send(Message::Close(Some(CloseFrame { code: CloseCode::Normal, reason: "".into() }))).await;
            drop(tx);
            let _ = writer.await;
            // Let the client answer the close; do not wait for ever.
            if tokio::time::timeout(Duration::from_secs(5), &mut reader).await.is_err() {
                reader.abort();
            }
        }
        _ = &mut reader => {
            // The client went away: drop the session (and its pipes).
            writer.abort();
        }
    }
}

/// Turns a WebSocket carrying a byte stream in binary messages into a byte
/// stream (port-forward's tunnel).
pub fn tunnel<S>(ws: WebSocketStream<S>) -> tokio::io::DuplexStream
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (ours, theirs) = tokio::io::duplex(256 * 1024);
    let (mut rd, mut wr) = tokio::io::split(ours);
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    });
    tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sink
                        .send(Message::Binary(Bytes::copy_from_slice(&buf[..n])))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
        }
        let _ = sink
            .send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })))
            .await;
    });
    theirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_messages() {
        assert_eq!(
            parse_message(true, &[0, b'h', b'i']).unwrap(),
            Inbound::Data {
                channel: 0,
                data: Bytes::from_static(b"hi")
            }
        );
        assert_eq!(
            parse_message(true, &[255, 0]).unwrap(),
            Inbound::Close { channel: 0 }
        );
        // v4 knows no close signal: channel 255 is just data.
        assert!(matches!(
            parse_message(false, &[255, 0]).unwrap(),
            Inbound::Data { channel: 255, .. }
        ));
        assert_eq!(parse_message(true, &[]), Err(WsError::Empty));
        assert_eq!(parse_message(true, &[255]), Err(WsError::BadClose));
        assert_eq!(parse_message(true, &[255, 0, 1]), Err(WsError::BadClose));
        assert_eq!(&frame(1, b"out")[..], b"\x01out");
        let size: TerminalSize = serde_json::from_slice(br#"{"Width":80,"Height":24}"#).unwrap();
        assert_eq!((size.width, size.height), (80, 24));
    }

    #[test]
    fn exit_statuses_as_kubelet() {
        let cmd = vec!["sh".to_string(), "-c".into(), "exit 3".into()];
        assert_eq!(exit_status(&Ok(0), &cmd)["status"], "Success");
        let s = exit_status(&Ok(3), &cmd);
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(
            s["details"]["causes"][0],
            json!({"reason": "ExitCode", "message": "3"})
        );
        assert!(s["message"]
            .as_str()
            .unwrap()
            .contains("[sh -c exit 3], exit code 3"));
        let e = exit_status(&Err(BackendError::Internal("boom".into())), &cmd);
        assert_eq!(e["reason"], "InternalError");
    }

    proptest::proptest! {
        #[test]
        fn parsing_never_panics(v5: bool, msg in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..16)) {
            let _ = parse_message(v5, &msg);
        }
    }
}
