//! Recipe 10.9: interop with systems that have their own way to stop. A
//! callback translates the token's cancellation: kill a child process, shut
//! down a socket so a blocking read returns.
//! Run: `cargo run --example interop`

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use cancel_core::CancellationSource;

fn main() -> std::io::Result<()> {
    let source = CancellationSource::new();
    let token = source.token();

    // A child process, killed on cancellation.
    let child = Arc::new(Mutex::new(
        Command::new("sleep")
            .arg("30")
            .stdout(Stdio::null())
            .spawn()?,
    ));
    let c = child.clone();
    let _kill = token.register(move || {
        let _ = c.lock().unwrap().kill();
    });

    // A blocking socket read, unblocked by a shutdown on cancellation.
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (_server_side, _) = listener.accept()?;
    let for_cancel = client.try_clone()?;
    let _shutdown = token.register(move || {
        let _ = for_cancel.shutdown(Shutdown::Both);
    });
    let reader = thread::spawn(move || {
        let mut client = client;
        let mut buf = [0u8; 16];
        client.read(&mut buf) // blocks until data, EOF or shutdown
    });

    let started = Instant::now();
    thread::sleep(Duration::from_millis(20));
    source.cancel();
    let read = reader.join().unwrap();
    let status = child.lock().unwrap().wait()?;
    println!(
        "read returned {read:?} and the child exited ({status}) {:?} after cancel",
        started.elapsed()
    );
    Ok(())
}
