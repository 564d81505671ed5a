//! tidings on Embassy: a core [`Node`] driven over an `embassy-net` UDP socket with `embassy-time`
//! timers, no heap, fixed RAM.
//!
//! The [`Runner`] owns the node and the socket and makes no protocol decision of its own: it feeds
//! every datagram and deadline to the node, sends what the node asks to send, answers requests from
//! [`Handle`]s, and publishes events. Requests and events travel over `embassy-sync` channels in a
//! [`Shared`] the application places in a `static`.
//!
//! ```ignore
//! static SHARED: Shared<CriticalSectionRawMutex, 32, 128, 16> = Shared::new();
//! let socket = UdpSocket::new(stack, &mut rx_meta, &mut rx_buf, &mut tx_meta, &mut tx_buf);
//! let node = Node::<Storage>::new(Config::mcu(cluster, id), now(), addr, b"", seed)?;
//! spawner.spawn(tidings_task(Runner::new(node, socket, 7946, &SHARED)?));
//! let handle = Handle::new(&SHARED);
//! handle.set(b"led", b"on").await?;
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod fmt;
#[cfg(feature = "hub")]
pub mod hub;

use core::net::{IpAddr, SocketAddr};
use embassy_futures::select::{select3, Either3};
use embassy_net::udp::UdpSocket;
use embassy_net::{IpAddress, IpEndpoint};
use embassy_sync::blocking_mutex::raw::RawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::mutex::Mutex;
use embassy_time::{Duration as Span, Instant as Clock, Timer};
use heapless::Vec;
use tidings::data::DataError;
use tidings::members::{MemberError, Status};
use tidings::node::{Event, Node, Storage};
use tidings::{NodeId, Version};

/// The node's clock: milliseconds of `embassy-time`.
pub fn now() -> tidings::Instant {
    tidings::Instant::from_millis(Clock::now().as_millis())
}

fn endpoint(a: SocketAddr) -> Option<IpEndpoint> {
    match a.ip() {
        IpAddr::V4(ip) => Some(IpEndpoint::new(IpAddress::Ipv4(ip), a.port())),
        #[cfg(feature = "ipv6")]
        IpAddr::V6(ip) => Some(IpEndpoint::new(IpAddress::Ipv6(ip), a.port())),
        #[cfg(not(feature = "ipv6"))]
        IpAddr::V6(_) => None,
    }
}

fn socket_addr(e: IpEndpoint) -> SocketAddr {
    // Another crate of the build may turn on a protocol this one was not asked for.
    #[allow(unreachable_patterns)]
    match e.addr {
        IpAddress::Ipv4(ip) => SocketAddr::new(IpAddr::V4(ip), e.port),
        #[cfg(feature = "ipv6")]
        IpAddress::Ipv6(ip) => SocketAddr::new(IpAddr::V6(ip), e.port),
        #[allow(unreachable_patterns)]
        _ => SocketAddr::new(IpAddr::V4(core::net::Ipv4Addr::UNSPECIFIED), e.port),
    }
}

/// Events buffered for the application; older ones are dropped (and counted) when it falls behind.
pub const EVENTS: usize = 16;

/// A member as the handle reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct MemberInfo {
    /// Its id.
    pub id: NodeId,
    /// Its status.
    pub status: Status,
    /// Its generation.
    pub generation: u32,
}

enum Request<const KEY: usize, const VALUE: usize> {
    Set(Vec<u8, KEY>, Vec<u8, VALUE>),
    Delete(Vec<u8, KEY>),
    Get(Vec<u8, KEY>),
    Members,
    Leave,
}

enum Reply<const VALUE: usize, const MEMBERS: usize> {
    Set(Result<Version, DataError>),
    Delete(Result<Version, DataError>),
    Get(Option<Vec<u8, VALUE>>),
    Members(Vec<MemberInfo, MEMBERS>),
    Leave(Result<(), MemberError>),
}

/// What runner and handles share: keys of up to `KEY` bytes, values of up to `VALUE`, member lists
/// of up to `MEMBERS`. Place it in a `static`.
pub struct Shared<M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize> {
    requests: Channel<M, Request<KEY, VALUE>, 1>,
    replies: Channel<M, Reply<VALUE, MEMBERS>, 1>,
    client: Mutex<M, ()>,
    events: Channel<M, Event<Vec<u8, KEY>>, EVENTS>,
}

impl<M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize> Default
    for Shared<M, KEY, VALUE, MEMBERS>
{
    fn default() -> Self {
        Self::new()
    }
}

impl<M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize>
    Shared<M, KEY, VALUE, MEMBERS>
{
    /// Empty channels.
    pub const fn new() -> Self {
        Shared {
            requests: Channel::new(),
            replies: Channel::new(),
            client: Mutex::new(()),
            events: Channel::new(),
        }
    }
}

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Error {
    /// The key is longer than `KEY` bytes.
    KeyTooLong,
    /// The value is longer than `VALUE` bytes.
    ValueTooLong,
    /// The node refused the write.
    Data(DataError),
    /// The node could not leave.
    Member(MemberError),
    /// The runner answered with a reply of another kind (a bug; never expected).
    Internal,
}

/// Requests to a running node, from any task.
pub struct Handle<'a, M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize> {
    shared: &'a Shared<M, KEY, VALUE, MEMBERS>,
}

impl<M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize> Clone
    for Handle<'_, M, KEY, VALUE, MEMBERS>
{
    fn clone(&self) -> Self {
        *self
    }
}

impl<M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize> Copy
    for Handle<'_, M, KEY, VALUE, MEMBERS>
{
}

impl<'a, M: RawMutex, const KEY: usize, const VALUE: usize, const MEMBERS: usize>
    Handle<'a, M, KEY, VALUE, MEMBERS>
{
    /// A handle to the node whose runner uses `shared`.
    pub fn new(shared: &'a Shared<M, KEY, VALUE, MEMBERS>) -> Self {
        Handle { shared }
    }

    async fn ask(&self, r: Request<KEY, VALUE>) -> Reply<VALUE, MEMBERS> {
        // One request in flight at a time: the reply channel then always answers the asker.
        let _turn = self.shared.client.lock().await;
        self.shared.requests.send(r).await;
        self.shared.replies.receive().await
    }

    fn key(key: &[u8]) -> Result<Vec<u8, KEY>, Error> {
        Vec::from_slice(key).map_err(|_| Error::KeyTooLong)
    }

    /// Sets `key` to `value` and spreads the write.
    pub async fn set(&self, key: &[u8], value: &[u8]) -> Result<Version, Error> {
        let value = Vec::from_slice(value).map_err(|_| Error::ValueTooLong)?;
        match self.ask(Request::Set(Self::key(key)?, value)).await {
            Reply::Set(r) => r.map_err(Error::Data),
            _ => Err(Error::Internal),
        }
    }

    /// Deletes `key`: a tombstone with a fresh version, whether or not this node holds the key.
    pub async fn delete(&self, key: &[u8]) -> Result<Version, Error> {
        match self.ask(Request::Delete(Self::key(key)?)).await {
            Reply::Delete(r) => r.map_err(Error::Data),
            _ => Err(Error::Internal),
        }
    }

    /// The value of `key`, if set.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8, VALUE>>, Error> {
        match self.ask(Request::Get(Self::key(key)?)).await {
            Reply::Get(v) => Ok(v),
            _ => Err(Error::Internal),
        }
    }

    /// The members the node knows (the first `MEMBERS` of them, in no particular order).
    pub async fn members(&self) -> Result<Vec<MemberInfo, MEMBERS>, Error> {
        match self.ask(Request::Members).await {
            Reply::Members(m) => Ok(m),
            _ => Err(Error::Internal),
        }
    }

    /// Leaves the cluster gracefully; the runner keeps serving until it is dropped.
    pub async fn leave(&self) -> Result<(), Error> {
        match self.ask(Request::Leave).await {
            Reply::Leave(r) => r.map_err(Error::Member),
            _ => Err(Error::Internal),
        }
    }

    /// The next membership or data event.
    pub async fn event(&self) -> Event<Vec<u8, KEY>> {
        self.shared.events.receive().await
    }
}

/// Why a runner could not start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum StartError {
    /// The UDP port could not be bound.
    Bind,
}

/// Counters of the runner itself (the node keeps its own in `Node::stats`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct RunnerStats {
    /// Datagrams the socket would not send (no route, buffer full, IPv6 destination).
    pub send_errors: u32,
    /// Datagrams too long for the receive buffer.
    pub truncated: u32,
    /// Events dropped because the application did not take them.
    pub events_dropped: u32,
}

/// The node at microcontroller capacities, the one the size report measures: 4 anti-entropy work
/// items, queues of 8, 32 rumors, 8 suspicions. Pair it with [`Config::mcu`](tidings::config::Config::mcu).
pub type McuNode<S> = Node<S, 4, 8, 32, 8>;

/// A [`Runner`] of an [`McuNode`].
pub type McuRunner<'a, S, M, const KEY: usize, const VALUE: usize, const MEMBERS: usize> =
    Runner<'a, S, M, KEY, VALUE, MEMBERS, 4, 8, 32, 8>;

/// Drives one node. Run [`Runner::run`] in a task of its own.
///
/// `SYNC`, `QUEUE`, `RUMORS` and `SUSPECTS` are the node's capacities ([`Node`]); the defaults are the
/// core's, for servers. On a microcontroller use [`McuRunner`] and [`McuNode`].
pub struct Runner<
    'a,
    S,
    M,
    const KEY: usize,
    const VALUE: usize,
    const MEMBERS: usize,
    const SYNC: usize = 32,
    const QUEUE: usize = 128,
    const RUMORS: usize = 128,
    const SUSPECTS: usize = 32,
> where
    S: Storage<Key = Vec<u8, KEY>>,
    M: RawMutex,
{
    node: Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>,
    socket: UdpSocket<'a>,
    shared: &'a Shared<M, KEY, VALUE, MEMBERS>,
    buf: [u8; 1500],
    stats: RunnerStats,
}

impl<
        'a,
        S,
        M,
        const KEY: usize,
        const VALUE: usize,
        const MEMBERS: usize,
        const SYNC: usize,
        const QUEUE: usize,
        const RUMORS: usize,
        const SUSPECTS: usize,
    > Runner<'a, S, M, KEY, VALUE, MEMBERS, SYNC, QUEUE, RUMORS, SUSPECTS>
where
    S: Storage<Key = Vec<u8, KEY>>,
    M: RawMutex,
{
    /// A runner for `node` on `socket`, bound here to `port`.
    pub fn new(
        node: Node<S, SYNC, QUEUE, RUMORS, SUSPECTS>,
        mut socket: UdpSocket<'a>,
        port: u16,
        shared: &'a Shared<M, KEY, VALUE, MEMBERS>,
    ) -> Result<Self, StartError> {
        socket.bind(port).map_err(|_| StartError::Bind)?;
        Ok(Runner {
            node,
            socket,
            shared,
            buf: [0; 1500],
            stats: RunnerStats::default(),
        })
    }

    /// The node.
    pub fn node(&self) -> &Node<S, SYNC, QUEUE, RUMORS, SUSPECTS> {
        &self.node
    }

    /// The runner's counters.
    pub fn stats(&self) -> RunnerStats {
        self.stats
    }

    /// Runs forever: datagrams, deadlines and requests in; datagrams, events and replies out.
    pub async fn run(&mut self) -> ! {
        let mut rx = [0u8; 1500];
        loop {
            let wake = self.node.poll_timeout().map_or_else(
                || Clock::now() + Span::from_secs(1),
                |t| Clock::from_millis(t.as_millis()),
            );
            let got = select3(
                self.socket.recv_from(&mut rx),
                Timer::at(wake),
                self.shared.requests.receive(),
            )
            .await;
            match got {
                Either3::First(Ok((n, meta))) => {
                    let from = socket_addr(meta.endpoint);
                    if let Some(bytes) = rx.get_mut(..n) {
                        if let Err(e) = self.node.handle_datagram(now(), from, bytes) {
                            fmt::debug!("datagram refused: {:?}", e);
                        }
                    }
                }
                Either3::First(Err(_)) => {
                    self.stats.truncated = self.stats.truncated.saturating_add(1);
                }
                Either3::Second(()) => self.node.handle_timeout(now()),
                Either3::Third(request) => {
                    let reply = self.serve(request);
                    self.shared.replies.send(reply).await;
                }
            }
            self.drain().await;
        }
    }

    fn serve(&mut self, request: Request<KEY, VALUE>) -> Reply<VALUE, MEMBERS> {
        let t = now();
        match request {
            Request::Set(k, v) => Reply::Set(self.node.set(t, &k, &v)),
            Request::Delete(k) => Reply::Delete(self.node.delete(t, &k)),
            Request::Get(k) => Reply::Get(self.node.get(&k).and_then(|v| Vec::from_slice(v).ok())),
            Request::Members => {
                let mut all = Vec::new();
                for m in self.node.members().iter() {
                    let info = MemberInfo {
                        id: m.id(),
                        status: m.status(),
                        generation: m.generation(),
                    };
                    if all.push(info).is_err() {
                        break;
                    }
                }
                Reply::Members(all)
            }
            Request::Leave => Reply::Leave(self.node.leave(t)),
        }
    }

    async fn drain(&mut self) {
        let t = now();
        while let Some(out) = self.node.poll_transmit(t, &mut self.buf) {
            let sent = match (endpoint(out.to), self.buf.get(..out.len)) {
                (Some(to), Some(bytes)) => self.socket.send_to(bytes, to).await.is_ok(),
                _ => false,
            };
            if !sent {
                self.stats.send_errors = self.stats.send_errors.saturating_add(1);
            }
        }
        while let Some(e) = self.node.poll_event() {
            fmt::info!("{:?}", e);
            if self.shared.events.try_send(e).is_err() {
                self.stats.events_dropped = self.stats.events_dropped.saturating_add(1);
            }
        }
    }
}
