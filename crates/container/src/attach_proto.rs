//! The attach protocol between a container's monitor and the clients
//! attached to the container's main process (`kubectl attach`).
//!
//! Transport: a stream unix socket, `attach.sock` in the container's state
//! directory, served by the monitor while the container runs. Every message
//! is a frame: one byte naming its kind, the payload length as a 4-byte
//! big-endian integer (at most [`MAX_PAYLOAD`]), then the payload.
//!
//! Client → monitor:
//! * `0x01` HELLO, first and once: one byte of flags naming the streams the
//!   client wants (bit 0 stdin, bit 1 stdout, bit 2 stderr).
//! * `0x02` STDIN: bytes for the container's stdin.
//! * `0x03` CLOSE_STDIN (empty): the client's stdin ended.
//! * `0x04` RESIZE: terminal width then height, two big-endian `u16`s.
//!
//! Monitor → client:
//! * `0x10` READY (empty), first: the client is registered; output from
//!   now on reaches it.
//! * `0x11` STDOUT and `0x12` STDERR: the container's output (with a
//!   terminal, everything is STDOUT), broadcast to every client that asked.
//!
//! The monitor ends a session by closing the connection: when the container
//! exits, or when a client with stdin closes it and the session detaches
//! (see [`crate::attach_server`]). A client ends it by closing its side.

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Largest payload accepted.
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// The socket's name in the state directory.
pub const SOCKET: &str = "attach.sock";

const HEADER: usize = 5;
const HELLO: u8 = 0x01;
const STDIN: u8 = 0x02;
const CLOSE_STDIN: u8 = 0x03;
const RESIZE: u8 = 0x04;
const READY: u8 = 0x10;
const STDOUT: u8 = 0x11;
const STDERR: u8 = 0x12;

/// A frame that breaks the protocol.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    /// Unknown frame kind.
    #[error("unknown attach frame kind {0:#04x}")]
    UnknownKind(u8),
    /// Payload over [`MAX_PAYLOAD`].
    #[error("attach frame of {0} bytes is too large")]
    TooLarge(u32),
    /// A payload of the wrong size for its kind.
    #[error("malformed attach frame of kind {0:#04x}")]
    Malformed(u8),
}

/// The streams a client attaches to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttachStreams {
    /// Send input to the container's stdin.
    pub stdin: bool,
    /// Receive its stdout (with a terminal: all output).
    pub stdout: bool,
    /// Receive its stderr (never with a terminal).
    pub stderr: bool,
}

impl AttachStreams {
    fn bits(self) -> u8 {
        u8::from(self.stdin) | u8::from(self.stdout) << 1 | u8::from(self.stderr) << 2
    }
    fn from_bits(b: u8) -> Self {
        AttachStreams {
            stdin: b & 1 != 0,
            stdout: b & 2 != 0,
            stderr: b & 4 != 0,
        }
    }
}

/// One protocol message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The client's streams (first frame of a session).
    Hello(AttachStreams),
    /// Input for the container.
    Stdin(Bytes),
    /// The client's input ended.
    CloseStdin,
    /// New terminal size.
    Resize {
        /// Columns.
        width: u16,
        /// Rows.
        height: u16,
    },
    /// The monitor registered the client.
    Ready,
    /// Container output on stdout.
    Stdout(Bytes),
    /// Container output on stderr.
    Stderr(Bytes),
}

impl Frame {
    /// The frame on the wire.
    pub fn encode(&self) -> Bytes {
        let (kind, payload): (u8, &[u8]) = match self {
            Frame::Hello(s) => (HELLO, &[s.bits()]),
            Frame::Stdin(b) => (STDIN, b),
            Frame::CloseStdin => (CLOSE_STDIN, &[]),
            Frame::Ready => (READY, &[]),
            Frame::Resize { width, height } => {
                let mut b = BytesMut::with_capacity(HEADER + 4);
                b.put_u8(RESIZE);
                b.put_u32(4);
                b.put_u16(*width);
                b.put_u16(*height);
                return b.freeze();
            }
            Frame::Stdout(b) => (STDOUT, b),
            Frame::Stderr(b) => (STDERR, b),
        };
        let mut b = BytesMut::with_capacity(HEADER + payload.len());
        b.put_u8(kind);
        b.put_u32(payload.len() as u32);
        b.extend_from_slice(payload);
        b.freeze()
    }

    /// Output frames for `data`, split so no payload exceeds [`MAX_PAYLOAD`].
    pub fn output(stderr: bool, data: &[u8]) -> impl Iterator<Item = Frame> + '_ {
        data.chunks(MAX_PAYLOAD as usize).map(move |c| {
            let b = Bytes::copy_from_slice(c);
            if stderr {
                Frame::Stderr(b)
            } else {
                Frame::Stdout(b)
            }
        })
    }
}

/// Takes one complete frame off the front of `buf`; `Ok(None)` if more
/// bytes are needed.
pub fn decode(buf: &mut BytesMut) -> Result<Option<Frame>, ProtoError> {
    if buf.len() < HEADER {
        return Ok(None);
    }
    let kind = buf[0];
    let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len > MAX_PAYLOAD {
        return Err(ProtoError::TooLarge(len));
    }
    if !matches!(
        kind,
        HELLO | STDIN | CLOSE_STDIN | RESIZE | READY | STDOUT | STDERR
    ) {
        return Err(ProtoError::UnknownKind(kind));
    }
    if buf.len() < HEADER + len as usize {
        return Ok(None);
    }
    buf.advance(HEADER);
    let mut payload = buf.split_to(len as usize).freeze();
    let frame = match kind {
        HELLO if payload.len() == 1 => Frame::Hello(AttachStreams::from_bits(payload[0])),
        STDIN => Frame::Stdin(payload),
        CLOSE_STDIN if payload.is_empty() => Frame::CloseStdin,
        READY if payload.is_empty() => Frame::Ready,
        RESIZE if payload.len() == 4 => Frame::Resize {
            width: payload.get_u16(),
            height: payload.get_u16(),
        },
        STDOUT => Frame::Stdout(payload),
        STDERR => Frame::Stderr(payload),
        _ => return Err(ProtoError::Malformed(kind)),
    };
    Ok(Some(frame))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_frames() -> Vec<Frame> {
        vec![
            Frame::Hello(AttachStreams {
                stdin: true,
                stdout: false,
                stderr: true,
            }),
            Frame::Stdin(Bytes::from_static(b"input\n")),
            Frame::CloseStdin,
            Frame::Resize {
                width: 80,
                height: 24,
            },
            Frame::Ready,
            Frame::Stdout(Bytes::from_static(b"out")),
            Frame::Stderr(Bytes::new()),
        ]
    }

    #[test]
    fn frames_round_trip_across_partial_reads() {
        let wire: Vec<u8> = all_frames().iter().flat_map(|f| f.encode()).collect();
        // Fed one byte at a time, the decoder yields each frame once complete.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire {
            buf.put_u8(b);
            while let Some(f) = decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, all_frames());
        assert!(buf.is_empty());
    }

    #[test]
    fn wire_format() {
        assert_eq!(
            &Frame::Stdout(Bytes::from_static(b"hi")).encode()[..],
            b"\x11\0\0\0\x02hi"
        );
        assert_eq!(
            &Frame::Resize {
                width: 0x0102,
                height: 3
            }
            .encode()[..],
            b"\x04\0\0\0\x04\x01\x02\0\x03"
        );
        assert_eq!(
            &Frame::Hello(AttachStreams {
                stdin: true,
                stdout: true,
                stderr: false
            })
            .encode()[..],
            b"\x01\0\0\0\x01\x03"
        );
    }

    #[test]
    fn bad_frames() {
        let mut b = BytesMut::from(&b"\x7f\0\0\0\0"[..]);
        assert_eq!(decode(&mut b), Err(ProtoError::UnknownKind(0x7f)));
        let mut b = BytesMut::from(&b"\x02\xff\0\0\0"[..]);
        assert!(matches!(decode(&mut b), Err(ProtoError::TooLarge(_))));
        let mut b = BytesMut::from(&b"\x04\0\0\0\x01x"[..]);
        assert_eq!(decode(&mut b), Err(ProtoError::Malformed(RESIZE)));
        let mut b = BytesMut::from(&b"\x03\0\0\0\x01x"[..]);
        assert_eq!(decode(&mut b), Err(ProtoError::Malformed(CLOSE_STDIN)));
        // A short header is not an error yet.
        let mut b = BytesMut::from(&b"\x02\0"[..]);
        assert_eq!(decode(&mut b), Ok(None));
    }

    #[test]
    fn large_output_is_split() {
        let data = vec![7u8; MAX_PAYLOAD as usize + 3];
        let frames: Vec<_> = Frame::output(true, &data).collect();
        assert_eq!(frames.len(), 2);
        assert!(matches!(&frames[1], Frame::Stderr(b) if b.len() == 3));
    }
}
