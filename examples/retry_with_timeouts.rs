//! The linking seed's retry loop: keep retrying until the master token is
//! cancelled; each attempt runs under its own timeout linked to the master;
//! a timed-out attempt is retried; the master's cancellation ends the loop.
//! The attempt's timeout never cancels the master.
//! Run: `cargo run --example retry_with_timeouts`

use std::thread;
use std::time::Duration;

use cancel_core::{CancellationSource, CancellationToken, Cancelled};

/// Gets "stuck" on its first attempts (longer than the attempt's timeout).
fn do_something(token: &CancellationToken, attempt: u32) -> Result<&'static str, Cancelled> {
    let needs = Duration::from_millis(if attempt < 3 { 200 } else { 1 });
    if token.wait_timeout(needs) {
        return Err(token.check().unwrap_err());
    }
    Ok("done")
}

fn my_task(master: &CancellationToken) -> Result<&'static str, Cancelled> {
    let mut attempt = 0;
    loop {
        master.check()?; // the master ends the loop
        attempt += 1;
        let child = CancellationSource::linked([master]);
        child.cancel_after(Duration::from_millis(20)); // "sometimes stuff gets stuck"
        match do_something(&child.token(), attempt) {
            Ok(v) => return Ok(v),
            // Our own timeout: ask the sources, then retry.
            Err(_) if child.is_cancelled() && !master.is_cancelled() => {
                println!("attempt {attempt} timed out; retrying");
            }
            Err(e) => return Err(e),
        }
    }
}

fn main() {
    let master = CancellationSource::new();
    println!(
        "result: {:?}",
        my_task(&master.token()).map_err(|e| e.to_string())
    );

    // Now the master is cancelled while attempts keep timing out.
    let master = CancellationSource::new();
    let token = master.token();
    let task = thread::spawn(move || {
        let stuck = CancellationSource::new();
        let mut attempts = 0;
        while !token.is_cancelled() {
            attempts += 1;
            let child = CancellationSource::linked([&token, &stuck.token()]);
            child.cancel_after(Duration::from_millis(5));
            child.token().wait();
        }
        attempts
    });
    thread::sleep(Duration::from_millis(40));
    master.cancel();
    println!(
        "the master stopped the loop after {} attempts",
        task.join().unwrap()
    );
}
