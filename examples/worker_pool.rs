//! Shutdown that waits, with threads only: a fixed pool of workers taking
//! jobs from a channel. Every job enters the pool's `Shutdown` scope when it
//! is submitted, so the scope counts the jobs queued and running. Shutdown
//! refuses new jobs (`submit` returns `ShutdownStarted`), lets the running
//! ones finish, drops the queued ones unstarted, and the main thread waits
//! with a deadline and reports what did not finish.
//! Run: `cargo run --example worker_pool`

use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use cancel_core::{CancellationToken, Shutdown, ShutdownStarted, WorkGuard};

type Job = Box<dyn FnOnce(&CancellationToken) + Send>;

/// A submitted job, with the guard that counts it in flight until a worker
/// has run it or dropped it.
struct Queued {
    name: &'static str,
    guard: WorkGuard,
    job: Job,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Done,
    NotStarted,
}

struct Pool {
    scope: Shutdown,
    queue: Sender<Queued>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    /// `n` workers in `scope`; each reports every job's outcome on `outcomes`.
    fn new(n: usize, scope: &Shutdown, outcomes: Sender<(&'static str, Outcome)>) -> Pool {
        let (queue, jobs) = mpsc::channel();
        let jobs = Arc::new(Mutex::new(jobs));
        let workers = (0..n)
            .map(|_| {
                let (jobs, outcomes) = (jobs.clone(), outcomes.clone());
                thread::spawn(move || worker(&jobs, &outcomes))
            })
            .collect();
        let scope = scope.clone();
        Pool {
            scope,
            queue,
            workers,
        }
    }

    /// Queues a job; refused once shutdown has begun.
    fn submit(
        &self,
        name: &'static str,
        job: impl FnOnce(&CancellationToken) + Send + 'static,
    ) -> Result<(), ShutdownStarted> {
        let guard = self.scope.enter()?;
        let job = Box::new(job);
        let queued = Queued { name, guard, job };
        self.queue.send(queued).expect("a worker is alive");
        Ok(())
    }

    /// Closes the queue: each worker returns once it is empty.
    fn join(self) {
        drop(self.queue);
        for worker in self.workers {
            worker.join().unwrap();
        }
    }
}

fn worker(jobs: &Mutex<Receiver<Queued>>, outcomes: &Sender<(&'static str, Outcome)>) {
    loop {
        // The lock is held to take a job, not to run it.
        let next = jobs.lock().unwrap().recv();
        let Ok(Queued { name, guard, job }) = next else {
            return;
        };
        let outcome = if guard.is_cancelled() {
            Outcome::NotStarted // queued when shutdown began: dropped unstarted
        } else {
            job(&guard.token()); // started: runs to its end, whatever happens
            Outcome::Done
        };
        drop(guard); // counted out before it is reported
        let _ = outcomes.send((name, outcome));
    }
}

fn main() {
    let begun = Instant::now();
    let scope = Shutdown::new();
    let (outcomes_tx, outcomes) = mpsc::channel();
    let pool = Pool::new(2, &scope, outcomes_tx);
    let (started_tx, started) = mpsc::channel();

    // A long batch that checks its token between items and stops early.
    let tx = started_tx.clone();
    pool.submit("batch", move |token| {
        tx.send(()).unwrap();
        let mut items = 0;
        while !token.is_cancelled() {
            thread::sleep(Duration::from_millis(1)); // one item of work
            items += 1;
        }
        println!("batch: stopped at shutdown after {items} item(s), its partial result saved");
    })
    .unwrap();
    // A job blocked in a call that ignores the token (a hung backend).
    let (release, blocked) = mpsc::channel::<()>();
    pool.submit("stuck", move |_token| {
        started_tx.send(()).unwrap();
        let _ = blocked.recv();
    })
    .unwrap();
    started.recv().unwrap();
    started.recv().unwrap();
    // Both workers are busy: these two wait in the queue.
    pool.submit("queued 1", |_| unreachable!("never started"))
        .unwrap();
    pool.submit("queued 2", |_| unreachable!("never started"))
        .unwrap();
    assert_eq!(scope.in_flight(), 4);

    // A real program would begin this from a signal handler or an admin call.
    assert!(scope.shutdown());
    assert_eq!(pool.submit("late", |_| {}), Err(ShutdownStarted));
    println!("shutdown begun: a new job is refused ({ShutdownStarted})");

    let mut finished: Vec<_> = outcomes.iter().take(3).collect();
    finished.sort();
    assert_eq!(
        finished,
        [
            ("batch", Outcome::Done),
            ("queued 1", Outcome::NotStarted),
            ("queued 2", Outcome::NotStarted),
        ]
    );
    println!("finished: {finished:?}");

    // Every job but the stuck one is accounted for: the count is exact.
    let late = scope.wait_timeout(Duration::from_millis(50)).unwrap_err();
    assert_eq!(late.count, 1);
    println!("the wait gave up: {late}");

    // Here a program would exit anyway; the demo unblocks the job instead.
    release.send(()).unwrap();
    scope
        .wait_timeout(Duration::from_secs(5))
        .expect("nothing left in flight");
    assert_eq!(outcomes.recv().unwrap(), ("stuck", Outcome::Done));
    assert!(scope.is_finished());
    pool.join();
    println!(
        "the stuck job ended once released; all done in {:?}",
        begun.elapsed()
    );
}
