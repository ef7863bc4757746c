//! The simulators' connections: a TCP listener that sets TCP_NODELAY and wraps each socket
//! so a handler can kill its connection (no byte of an answer is written: the client sees a
//! dropped connection) or slow its body down. Shared by every simulator.

use std::future::Future as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

/// What a handler knows about its connection.
#[derive(Clone, Debug, Default)]
pub(crate) struct Conn {
    kill: Arc<AtomicBool>,
    /// Milliseconds between body chunks; 0 writes at full speed.
    chunk_delay_ms: Arc<AtomicU64>,
}

impl Conn {
    /// Makes every further read and write on this connection fail, so hyper drops it.
    pub(crate) fn kill(&self) {
        self.kill.store(true, Ordering::SeqCst);
    }

    /// Writes the rest of this connection's output slowly (see [`ConnIo`]).
    pub(crate) fn slow_down(&self, chunk_delay_ms: u64) {
        self.chunk_delay_ms.store(chunk_delay_ms, Ordering::SeqCst);
    }
}

/// Bytes per chunk of a slowed-down body.
const SLOW_CHUNK_BYTES: usize = 16;

impl Connected<IncomingStream<'_, SimListener>> for Conn {
    fn connect_info(stream: IncomingStream<'_, SimListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// An accepted socket whose reads and writes fail once its [`Conn`] is killed, and whose output
/// after the first response head is written in [`SLOW_CHUNK_BYTES`] chunks with a pause between
/// them once the [`Conn`] is slowed down.
pub(crate) struct ConnIo {
    inner: TcpStream,
    conn: Conn,
    /// The end of the response head (`\r\n\r\n`) has been written since slowing down began.
    head_written: bool,
    pause: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl ConnIo {
    fn killed(&self) -> bool {
        self.conn.kill.load(Ordering::SeqCst)
    }

    /// A write while slowed down: the head at full speed, then one small chunk per pause.
    fn poll_write_slow(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
        delay_ms: u64,
    ) -> Poll<io::Result<usize>> {
        if !self.head_written {
            let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4);
            let part = &buf[..head_end.unwrap_or(buf.len())];
            let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, part))?;
            if head_end == Some(written) {
                self.head_written = true;
            }
            return Poll::Ready(Ok(written));
        }
        if let Some(pause) = self.pause.as_mut() {
            std::task::ready!(pause.as_mut().poll(cx));
            self.pause = None;
        }
        let part = &buf[..buf.len().min(SLOW_CHUNK_BYTES)];
        let written = std::task::ready!(Pin::new(&mut self.inner).poll_write(cx, part))?;
        self.pause = Some(Box::pin(tokio::time::sleep(Duration::from_millis(
            delay_ms,
        ))));
        Poll::Ready(Ok(written))
    }
}

fn aborted() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "simulator dropped the connection",
    )
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        let this = self.get_mut();
        match this.conn.chunk_delay_ms.load(Ordering::SeqCst) {
            0 => Pin::new(&mut this.inner).poll_write(cx, buf),
            delay_ms => this.poll_write_slow(cx, buf, delay_ms),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        let this = self.get_mut();
        match this.conn.chunk_delay_ms.load(Ordering::SeqCst) {
            0 => Pin::new(&mut this.inner).poll_write_vectored(cx, bufs),
            // A partial write is allowed: write from the first non-empty slice only.
            delay_ms => match bufs.iter().find(|b| !b.is_empty()) {
                Some(first) => this.poll_write_slow(cx, first, delay_ms),
                None => Poll::Ready(Ok(0)),
            },
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.killed() {
            return Poll::Ready(Err(aborted()));
        }
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A TCP listener that sets TCP_NODELAY and wraps each socket in [`ConnIo`].
pub(crate) struct SimListener(pub TcpListener);

impl Listener for SimListener {
    type Io = ConnIo;
    type Addr = Conn;

    async fn accept(&mut self) -> (ConnIo, Conn) {
        loop {
            match self.0.accept().await {
                Ok((inner, _peer)) => {
                    if let Err(error) = inner.set_nodelay(true) {
                        tracing::debug!(%error, "simulator: TCP_NODELAY not set");
                    }
                    let conn = Conn::default();
                    let io = ConnIo {
                        inner,
                        conn: conn.clone(),
                        head_written: false,
                        pause: None,
                    };
                    return (io, conn);
                }
                Err(error) => {
                    // Out of file descriptors and similar: wait a little rather than spin.
                    tracing::warn!(%error, "simulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Conn> {
        self.0.local_addr()?;
        Ok(Conn::default())
    }
}

/// How long a simulator's shutdown waits for open connections before it aborts them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` with killable connections until `stop` turns true.
pub(crate) fn serve(
    listener: TcpListener,
    router: axum::Router,
    mut stop: tokio::sync::watch::Receiver<bool>,
    name: &'static str,
) -> tokio::task::JoinHandle<io::Result<()>> {
    let app = router.into_make_service_with_connect_info::<Conn>();
    let serve = axum::serve(SimListener(listener), app).with_graceful_shutdown(async move {
        // An error means every sender is gone, which is also a reason to stop.
        let _ = stop.wait_for(|stopping| *stopping).await;
    });
    tracing::debug!("{name} simulator serving");
    tokio::spawn(async move { serve.await })
}

/// Waits for a stopped simulator's server task: up to the grace period, then aborts it.
pub(crate) async fn join(mut task: tokio::task::JoinHandle<io::Result<()>>, name: &'static str) {
    match tokio::time::timeout(SHUTDOWN_GRACE, &mut task).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => tracing::warn!(%error, "{name} simulator: server error"),
        Ok(Err(error)) => tracing::warn!(%error, "{name} simulator: server task failed"),
        Err(_) => {
            tracing::warn!("{name} simulator: connections still open; aborting");
            task.abort();
            // The abort's JoinError is the expected outcome.
            let _ = task.await;
        }
    }
}
