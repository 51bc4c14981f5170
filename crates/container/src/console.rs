//! Terminals: receiving a pty master over runc's `--console-socket`
//! (SCM_RIGHTS), passing it on, resizing it, and an async reader/writer over it.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use rustix::termios::{tcsetwinsize, Winsize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Errors handling terminals.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The cause.
        source: std::io::Error,
    },
    /// The peer sent no file descriptor.
    #[error("no file descriptor received on the console socket")]
    NoFd,
}

fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ConsoleError {
    move |source| ConsoleError::Io { what, source }
}

/// Receives one file descriptor (and the message bytes sent with it).
pub fn recv_fd(sock: &UnixStream) -> Result<(OwnedFd, Vec<u8>), ConsoleError> {
    match recv_msg(sock)? {
        (Some(fd), data) => Ok((fd, data)),
        (None, _) => Err(ConsoleError::NoFd),
    }
}

/// Receives one message: its bytes and the file descriptor sent with it, if any.
pub fn recv_msg(sock: &UnixStream) -> Result<(Option<OwnedFd>, Vec<u8>), ConsoleError> {
    let mut data = vec![0u8; 4096];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [IoSliceMut::new(&mut data)];
    let msg = recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC).map_err(|e| {
        ConsoleError::Io {
            what: "recvmsg on console socket",
            source: e.into(),
        }
    })?;
    let n = msg.bytes;
    let mut fd = None;
    for m in control.drain() {
        if let RecvAncillaryMessage::ScmRights(mut fds) = m {
            if fd.is_none() {
                fd = fds.next();
            }
        }
    }
    data.truncate(n);
    Ok((fd, data))
}

/// Sends one file descriptor with a message.
pub fn send_fd(sock: &UnixStream, fd: impl AsFd, msg: &[u8]) -> Result<(), ConsoleError> {
    let fds = [fd.as_fd()];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    sendmsg(sock, &[IoSlice::new(msg)], &mut control, SendFlags::empty()).map_err(|e| {
        ConsoleError::Io {
            what: "sendmsg",
            source: e.into(),
        }
    })?;
    Ok(())
}

/// Accepts one connection on a console socket and receives the pty master.
pub fn accept_master(listener: &UnixListener) -> Result<OwnedFd, ConsoleError> {
    let (conn, _) = listener
        .accept()
        .map_err(io("accepting on console socket"))?;
    Ok(recv_fd(&conn)?.0)
}

/// Sets a terminal's size.
pub fn resize(fd: impl AsFd, width: u16, height: u16) -> Result<(), ConsoleError> {
    tcsetwinsize(
        fd,
        Winsize {
            ws_row: height,
            ws_col: width,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )
    .map_err(|e| ConsoleError::Io {
        what: "setting the terminal size",
        source: e.into(),
    })
}

/// Async reads and writes on a pty master; `EIO` (the other side closed) is EOF.
#[derive(Debug)]
pub struct PtyStream {
    fd: AsyncFd<OwnedFd>,
}

impl PtyStream {
    /// Wraps a pty master (made non-blocking). Needs a tokio runtime.
    pub fn new(fd: OwnedFd) -> Result<Self, ConsoleError> {
        rustix::io::ioctl_fionbio(&fd, true).map_err(|e| ConsoleError::Io {
            what: "setting O_NONBLOCK",
            source: e.into(),
        })?;
        // `AsyncFd::new` is deprecated for fds it does not own; an `OwnedFd` is owned.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd).map_err(io("registering the pty"))?;
        Ok(PtyStream { fd })
    }

    /// Sets the terminal size.
    pub fn resize(&self, width: u16, height: u16) -> Result<(), ConsoleError> {
        resize(self.fd.get_ref(), width, height)
    }
}

impl AsyncRead for PtyStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            match guard
                .try_io(|fd| rustix::io::read(fd.get_ref(), &mut *unfilled).map_err(Into::into))
            {
                Ok(Ok(n)) => {
                    buf.advance(n);
                    return Poll::Ready(Ok(()));
                }
                Ok(Err(e)) if e.raw_os_error() == Some(rustix::io::Errno::IO.raw_os_error()) => {
                    return Poll::Ready(Ok(()))
                }
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            }
        }
    }
}

impl AsyncWrite for PtyStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| rustix::io::write(fd.get_ref(), data).map_err(Into::into)) {
                Ok(r) => return Poll::Ready(r),
                Err(_would_block) => continue,
            }
        }
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_passing_round_trip() {
        let (a, b) = UnixStream::pair().unwrap();
        let file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut &file, b"hello").unwrap();
        send_fd(&a, &file, b"name").unwrap();
        let (fd, msg) = recv_fd(&b).unwrap();
        assert_eq!(msg, b"name");
        let mut f = std::fs::File::from(fd);
        std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(0)).unwrap();
        let mut s = String::new();
        std::io::Read::read_to_string(&mut f, &mut s).unwrap();
        assert_eq!(s, "hello");
        drop(a);
        assert!(matches!(recv_fd(&b), Err(ConsoleError::NoFd)));
    }
}
