//! A TCP relay on 127.0.0.1 standing in for the network between a box's agent and the
//! gateway: it forwards connections to a target port until the test cuts them all
//! ([`Relay::cut`]) or takes the link down ([`Relay::set_up`]), when connections it
//! accepts are closed at once, as an unreachable gateway would look to the agent.

use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

#[derive(Default)]
struct Shared {
    up: AtomicBool,
    stop: AtomicBool,
    /// Both ends of every connection being forwarded, for [`Relay::cut`].
    open: Mutex<Vec<TcpStream>>,
    forwarded: AtomicUsize,
}

pub struct Relay {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Relay {
    /// Forwards 127.0.0.1:(a free port) to 127.0.0.1:`target`; the link starts up.
    pub fn start(target: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the relay");
        let port = listener.local_addr().expect("relay address").port();
        listener.set_nonblocking(true).expect("non-blocking relay listener");
        let shared = Arc::new(Shared { up: AtomicBool::new(true), ..Default::default() });
        let accept = {
            let shared = shared.clone();
            std::thread::spawn(move || {
                // Polls so that dropping the relay can stop it; ends with the relay.
                while !shared.stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((client, _)) => forward(&shared, client, target),
                        // Nothing to accept, or a connection aborted before it was accepted.
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
        };
        Self { port, shared, accept: Some(accept) }
    }

    /// `127.0.0.1:PORT`, for the agent to dial.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Closes every connection being forwarded, both ways.
    pub fn cut(&self) {
        for s in self.shared.open.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }

    /// Up: new connections are forwarded. Down: they are closed as soon as accepted.
    pub fn set_up(&self, up: bool) {
        self.shared.up.store(up, Ordering::Relaxed);
    }

    /// How many connections were forwarded so far.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::Relaxed)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        self.cut();
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

/// Connects `client` to the target and pumps both ways on two threads, which end when
/// either side closes or the relay cuts the connection.
fn forward(shared: &Shared, client: TcpStream, target: u16) {
    // Checked under the lock `cut` takes, so no connection slips in between a test's
    // `set_up(false)` and its `cut()`.
    let mut open = shared.open.lock().unwrap();
    if !shared.up.load(Ordering::Relaxed) {
        return;
    }
    let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
        return;
    };
    let (Ok(()), Ok(c2), Ok(s2)) = (client.set_nonblocking(false), client.try_clone(), server.try_clone()) else {
        return;
    };
    open.extend([c2.try_clone(), s2.try_clone()].into_iter().flatten());
    drop(open);
    shared.forwarded.fetch_add(1, Ordering::Relaxed);
    for (mut from, mut to) in [(client, s2), (server, c2)] {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(Shutdown::Write);
        });
    }
}
