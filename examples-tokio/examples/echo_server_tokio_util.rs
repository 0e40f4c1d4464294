//! The graceful-shutdown echo server of `echo_server.rs`, written as a
//! tokio user would today: tokio-util's `CancellationToken` signals,
//! `TaskTracker` counts the tasks, and `tokio::time` gives the idle timeout
//! and the deadline. Same server, same demo, same checks, so the two files
//! compare line for line.
//!
//! The demo checks itself in well under a second: an active client, an idle
//! one that the server times out, and two with a request in flight when
//! shutdown begins: one gets its echo in full, one is stuck past the
//! deadline and reported.
//! Run: `cargo run -p cancel-core-examples --example echo_server_tokio_util`

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::WriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A connection that sends no request for this long is closed.
const IDLE: Duration = Duration::from_millis(200);
/// The simulated work of one request.
const WORK: Duration = Duration::from_millis(20);
/// How long the shutdown waits for the connections.
const DEADLINE: Duration = Duration::from_millis(100);

/// Accepts connections until shutdown begins. The loop is a tracked task
/// too, so the wait includes closing the listener.
async fn serve(listener: TcpListener, token: CancellationToken, tracker: TaskTracker) {
    loop {
        let socket = match token.run_until_cancelled(listener.accept()).await {
            Some(Ok((socket, _peer))) => socket,
            Some(Err(e)) => {
                eprintln!("accept failed: {e}");
                continue;
            }
            None => return, // the listener closes: no new connections
        };
        // `close()` refuses no task: the token check above is what stops
        // new connections. This loop is tracked, so the wait cannot end
        // before a task spawned here is counted.
        tracker.spawn(connection(socket, token.clone()));
    }
}

/// Echoes each line until the client leaves, stays idle too long, or
/// shutdown begins. The tracker counts the task in flight until return.
async fn connection(mut socket: TcpStream, token: CancellationToken) {
    let (reader, mut writer) = socket.split();
    let mut lines = BufReader::new(reader).lines();
    let bye = loop {
        // The idle timeout covers the wait for a request, a timer per wait.
        let next = tokio::time::timeout(IDLE, lines.next_line());
        let line = match token.run_until_cancelled(next).await {
            Some(Ok(Ok(Some(line)))) => line,
            Some(Ok(_)) => return, // the client left, or the socket failed
            Some(Err(_elapsed)) => break "bye: idle\n",
            None => break "bye: shutting down\n",
        };
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
    let (token, tracker) = (CancellationToken::new(), TaskTracker::new());
    tracker.spawn(serve(listener, token.clone(), tracker.clone()));

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
    token.cancel();
    tracker.close(); // lets `wait` end once empty; refuses nothing
    let report = tokio::time::timeout(DEADLINE, tracker.wait())
        .await
        .map_err(|_elapsed| tracker.len());

    // The request in flight was answered in full.
    assert_eq!(line(&mut busy).await, " work");
    assert_eq!(line(&mut busy).await, "bye: shutting down");
    println!("busy client: its echo was finished, then the connection closed");
    let late = report.expect_err("the stuck request outlives the deadline");
    assert!(late >= 1, "the stuck connection at least");
    println!("after {DEADLINE:?}: shutdown timed out with {late} task(s) in flight");
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
