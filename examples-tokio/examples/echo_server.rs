//! Graceful shutdown of a TCP echo server with cancel-core alone: a
//! `Shutdown` scope for the server, a guard per connection, an idle timeout
//! per connection, a deadline on the wait, and a report of what did not
//! finish. `echo_server_tokio_util.rs` is the same server and the same demo
//! with tokio-util's `CancellationToken` and `TaskTracker`.
//!
//! The demo checks itself in well under a second: an active client, an idle
//! one that the server times out, and two with a request in flight when
//! shutdown begins: one gets its echo in full, one is stuck past the
//! deadline and reported.
//! Run: `cargo run -p cancel-core-examples --example echo_server`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use cancel_core::{Shutdown, ShutdownStarted, WorkGuard};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream};

/// A connection that sends no request for this long is closed.
const IDLE: Duration = Duration::from_millis(200);
/// The simulated work of one request.
const WORK: Duration = Duration::from_millis(20);
/// How long the shutdown waits for the connections.
const DEADLINE: Duration = Duration::from_millis(100);

/// Accepts connections until shutdown begins. The loop is work of the
/// scope too, so the wait includes closing the listener.
async fn serve(listener: TcpListener, server: Shutdown, accepting: WorkGuard) {
    let stop = accepting.token();
    loop {
        let socket = match stop.run_until_cancelled(listener.accept()).await {
            Ok(Ok((socket, _peer))) => socket,
            Ok(Err(e)) => {
                eprintln!("accept failed: {e}");
                continue;
            }
            Err(_shutdown) => return, // the listener closes: no new connections
        };
        // Refused if shutdown began since the accept: the socket closes.
        let Ok(guard) = server.enter() else { return };
        tokio::spawn(connection(socket, guard));
    }
}

/// Echoes each line until the client leaves, stays idle too long, or
/// shutdown begins. The guard counts the connection in flight until return.
async fn connection(mut socket: TcpStream, guard: WorkGuard) {
    // The connection's own source: the shutdown reaches it (a child of the
    // scope's token), and its idle timer cancels it alone.
    let conn = guard.token().child();
    let token = conn.token();
    let (reader, mut writer) = socket.split();
    let mut lines = BufReader::new(reader).lines();
    let bye = loop {
        conn.cancel_after(IDLE); // re-armed for each request: the last call wins
        let line = match token.run_until_cancelled(lines.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(_) => return, // the client left, or the socket failed
            Err(stop) if stop.reason().is_timed_out() => break "bye: idle\n",
            Err(_) => break "bye: shutting down\n",
        };
        conn.cancel_after(Duration::MAX); // serving is not idling: disarmed
        // Not raced against the token: a request that was read is answered
        // in full, even if shutdown begins meanwhile.
        if echo(&mut writer, &line).await.is_err() {
            return;
        }
    };
    let _ = writer.write_all(bye.as_bytes()).await;
}

/// The request handler: echoes a line in two halves around some work (a
/// slow backend), so a client holding the first half knows its request is
/// in flight. "stuck" never finishes: a backend that hangs and ignores the
/// shutdown.
async fn echo(writer: &mut WriteHalf<'_>, line: &str) -> std::io::Result<()> {
    let (first, rest) = line.as_bytes().split_at(line.len() / 2);
    writer.write_all(first).await?;
    if line == "stuck" {
        std::future::pending::<()>().await;
    }
    tokio::time::sleep(WORK).await;
    writer.write_all(rest).await?;
    writer.write_all(b"\n").await
}

// --- The demo: clients that check what the server does. ------------------

#[tokio::main]
async fn main() {
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = Shutdown::new();
    tokio::spawn(serve(listener, server.clone(), server.enter().unwrap()));

    // Both requests in one write: no gap for the idle timer to see.
    let mut active = connect(addr).await;
    send(&mut active, "hello\nworld").await;
    assert_eq!(line(&mut active).await, "hello");
    assert_eq!(line(&mut active).await, "world");
    drop(active);
    println!("active client: both requests echoed, then it left");

    let mut idle = connect(addr).await;
    send(&mut idle, "anyone?").await;
    assert_eq!(line(&mut idle).await, "anyone?");
    assert_eq!(line(&mut idle).await, "bye: idle");
    assert_eq!(line(&mut idle).await, "", "then closed");
    println!("idle client: closed after {IDLE:?} without a request");

    // Two requests in flight: holding the first half of its echo, each
    // client knows that the server is working on its request.
    let mut busy = connect(addr).await;
    send(&mut busy, "slow work").await;
    assert_eq!(read(&mut busy, 4).await, "slow");
    let mut stuck = connect(addr).await;
    send(&mut stuck, "stuck").await;
    assert_eq!(read(&mut stuck, 2).await, "st");

    // A real server would await `tokio::signal::ctrl_c()` here.
    println!("shutdown begins with 2 requests in flight");
    server.shutdown();
    assert_eq!(server.enter().unwrap_err(), ShutdownStarted, "no new work");
    let report = server.finished_timeout(DEADLINE).await;

    // The request in flight was answered in full.
    assert_eq!(line(&mut busy).await, " work");
    assert_eq!(line(&mut busy).await, "bye: shutting down");
    println!("busy client: its echo was finished, then the connection closed");
    let late = report.expect_err("the stuck request outlives the deadline");
    assert!(late.count >= 1, "the stuck connection at least");
    println!("after {DEADLINE:?}: {late}");
    println!("done in {:?}", started.elapsed());
    // Returning drops the runtime and, with it, the stuck connection.
}

type Client = BufReader<TcpStream>;

async fn connect(addr: SocketAddr) -> Client {
    BufReader::new(TcpStream::connect(addr).await.unwrap())
}

async fn send(client: &mut Client, lines: &str) {
    let request = format!("{lines}\n");
    client.write_all(request.as_bytes()).await.unwrap();
}

/// One line without its newline; empty once the server has closed.
async fn line(client: &mut Client) -> String {
    let mut line = String::new();
    client.read_line(&mut line).await.unwrap();
    line.trim_end_matches('\n').to_owned()
}

async fn read(client: &mut Client, n: usize) -> String {
    let mut buf = vec![0; n];
    client.read_exact(&mut buf).await.unwrap();
    String::from_utf8(buf).unwrap()
}
