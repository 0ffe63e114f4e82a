//! Ethernet ports and their queues.

use std::cell::Cell;
use std::ffi::{CStr, CString};
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::eal::{ensure_live, object_token, ObjectToken};
use crate::error::{Error, Result};
use crate::mbuf::Burst;
use crate::mempool::Mempool;

/// A DPDK ethernet port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl PortId {
    /// Looks a port up by device name (`net_ring0`, `0000:3b:00.0`, …).
    pub fn by_name(name: &str) -> Result<PortId> {
        ensure_live()?;
        let c_name = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("port name {name:?} has a NUL")))?;
        let mut id = 0u16;
        // SAFETY: c_name is a valid C string and id a valid out-pointer for the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_get_port_by_name", rc));
        }
        Ok(PortId(id))
    }
}

/// The standard 40-byte Toeplitz key most NICs default to.
pub const DEFAULT_RSS_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// RSS settings of a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssConfig {
    /// The Toeplitz key (40 or 52 bytes); `None` keeps the device's own.
    pub key: Option<Vec<u8>>,
    /// `RTE_ETH_RSS_*` hash types.
    pub hash_types: u64,
}

impl RssConfig {
    /// IPv4/IPv6 addresses plus TCP/UDP ports, with the standard key.
    pub fn ip_tcp_udp() -> RssConfig {
        RssConfig {
            key: Some(DEFAULT_RSS_KEY.to_vec()),
            hash_types: u64::from(
                dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP,
            ),
        }
    }
}

/// How to configure a port.
#[derive(Debug, Clone)]
pub struct PortConfig {
    /// Receive queues.
    pub rx_queues: u16,
    /// Transmit queues.
    pub tx_queues: u16,
    /// Descriptors per receive queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per transmit queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// RSS over the receive queues; hash types the device lacks are dropped.
    pub rss: Option<RssConfig>,
    /// `RTE_ETH_RX_OFFLOAD_*` flags to enable (must be in the device's capabilities).
    pub rx_offloads: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` flags to enable (must be in the device's capabilities).
    pub tx_offloads: u64,
}

impl PortConfig {
    /// `queues` receive and transmit queues, 1024 descriptors each, no RSS, no offloads.
    pub fn new(queues: u16) -> PortConfig {
        PortConfig {
            rx_queues: queues,
            tx_queues: queues,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: None,
            rx_offloads: 0,
            tx_offloads: 0,
        }
    }

    /// The same with RSS.
    pub fn with_rss(mut self, rss: RssConfig) -> PortConfig {
        self.rss = Some(rss);
        self
    }
}

/// What a device can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortInfo {
    /// PMD name, e.g. `net_ring`.
    pub driver: String,
    /// Most receive queues.
    pub max_rx_queues: u16,
    /// Most transmit queues.
    pub max_tx_queues: u16,
    /// RETA entries (0 when the device has no RSS).
    pub reta_size: u16,
    /// RSS key length in bytes (0 when the device has no RSS).
    pub hash_key_size: u8,
    /// Hash types the device supports (`RTE_ETH_RSS_*`).
    pub flow_type_rss_offloads: u64,
    /// Receive offloads the device supports.
    pub rx_offload_capa: u64,
    /// Transmit offloads the device supports.
    pub tx_offload_capa: u64,
}

impl PortInfo {
    /// True when the device computes IPv4, TCP and UDP checksums on transmit.
    pub fn tx_checksum_offload(&self) -> bool {
        let want = u64::from(
            dpdk_sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM
                | dpdk_sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM
                | dpdk_sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM,
        );
        self.tx_offload_capa & want == want
    }
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkStatus {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 when unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets the device dropped for lack of receive descriptors.
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// Receive mbuf allocation failures.
    pub rx_nombuf: u64,
}

/// Keeps a port open while any handle (the `Port`, a queue) refers to it.
#[derive(Debug)]
struct PortGuard {
    id: u16,
    _pools: Vec<Mempool>,
    _token: ObjectToken,
}

impl Drop for PortGuard {
    fn drop(&mut self) {
        // SAFETY: no handle to this port's queues is left (they hold this guard), so
        // stopping and closing it cannot race with a burst.
        unsafe {
            dpdk_sys::rte_eth_dev_stop(self.id);
            dpdk_sys::rte_eth_dev_close(self.id);
        }
    }
}

/// A configured-or-not ethernet port. Closed (after a stop) when it and every queue
/// handle taken from it are gone.
#[derive(Debug)]
pub struct Port {
    id: u16,
    guard: Option<Arc<PortGuard>>,
    pools: Vec<Mempool>,
    started: bool,
}

impl Port {
    /// Opens a port by id.
    pub fn open(id: PortId) -> Result<Port> {
        ensure_live()?;
        // SAFETY: any id may be asked about.
        if unsafe { dpdk_sys::rte_eth_dev_is_valid_port(id.0) } == 0 {
            return Err(Error::InvalidArgument(format!(
                "no ethernet port with id {}",
                id.0
            )));
        }
        Ok(Port {
            id: id.0,
            guard: None,
            pools: Vec::new(),
            started: false,
        })
    }

    /// Opens a port by device name.
    pub fn by_name(name: &str) -> Result<Port> {
        Port::open(PortId::by_name(name)?)
    }

    /// The port id.
    pub fn id(&self) -> PortId {
        PortId(self.id)
    }

    /// Device capabilities.
    pub fn info(&self) -> Result<PortInfo> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_dev_info_get(self.id, &mut info) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_info_get", rc));
        }
        let driver = if info.driver_name.is_null() {
            String::new()
        } else {
            // SAFETY: DPDK gives a static NUL-terminated driver name.
            unsafe { CStr::from_ptr(info.driver_name) }
                .to_string_lossy()
                .into_owned()
        };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: info.tx_offload_capa,
        })
    }

    /// Configures queues (port stopped) and returns one handle per queue. Receive
    /// queues take their buffers from `pool`.
    pub fn configure(
        &mut self,
        config: &PortConfig,
        pool: &Mempool,
    ) -> Result<(Vec<RxQueue>, Vec<TxQueue>)> {
        if self.started {
            return Err(Error::InvalidArgument(format!(
                "port {} must be stopped to be configured",
                self.id
            )));
        }
        if self
            .guard
            .as_ref()
            .is_some_and(|g| Arc::strong_count(g) > 1)
        {
            return Err(Error::InvalidArgument(format!(
                "port {}: queue handles from an earlier configure are still alive",
                self.id
            )));
        }
        let info = self.info()?;
        if config.rx_queues == 0 || config.rx_queues > info.max_rx_queues {
            return Err(Error::InvalidArgument(format!(
                "port {} ({}): {} rx queues asked, 1..={} possible",
                self.id, info.driver, config.rx_queues, info.max_rx_queues
            )));
        }
        if config.tx_queues == 0 || config.tx_queues > info.max_tx_queues {
            return Err(Error::InvalidArgument(format!(
                "port {} ({}): {} tx queues asked, 1..={} possible",
                self.id, info.driver, config.tx_queues, info.max_tx_queues
            )));
        }

        let mut conf = dpdk_sys::rte_eth_conf::default();
        conf.rxmode.offloads = config.rx_offloads;
        conf.txmode.offloads = config.tx_offloads;
        let mut key_copy = Vec::new();
        if let Some(rss) = &config.rss {
            let hash_types = rss.hash_types & info.flow_type_rss_offloads;
            if hash_types != 0 {
                conf.rxmode.mq_mode = dpdk_sys::RTE_ETH_MQ_RX_RSS;
                conf.rx_adv_conf.rss_conf.rss_hf = hash_types;
                if let Some(key) = &rss.key {
                    check_key(key)?;
                    key_copy = key.clone();
                    conf.rx_adv_conf.rss_conf.rss_key = key_copy.as_mut_ptr();
                    conf.rx_adv_conf.rss_conf.rss_key_len = key_copy.len() as u8;
                }
            }
        }
        // SAFETY: valid port id; conf (and the key it points to, kept alive in key_copy)
        // is valid for the call; DPDK copies what it keeps.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_configure(self.id, config.rx_queues, config.tx_queues, &conf)
        };
        drop(key_copy);
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_configure", rc));
        }
        let (mut nb_rx, mut nb_tx) = (config.rx_desc, config.tx_desc);
        // SAFETY: valid port id and out-pointers.
        let rc =
            unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.id, &mut nb_rx, &mut nb_tx) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_adjust_nb_rx_tx_desc", rc));
        }
        // SAFETY: valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.id) };
        let socket = if socket < 0 { 0 } else { socket as u32 };
        for q in 0..config.rx_queues {
            // SAFETY: valid port and queue id, the pool outlives the port (kept in the
            // guard), a NULL rxconf means the device defaults.
            let rc = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(
                    self.id,
                    q,
                    nb_rx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            };
            if rc != 0 {
                return Err(Error::dpdk("rte_eth_rx_queue_setup", rc));
            }
        }
        for q in 0..config.tx_queues {
            // SAFETY: valid port and queue id; NULL txconf means the device defaults.
            let rc = unsafe {
                dpdk_sys::rte_eth_tx_queue_setup(self.id, q, nb_tx, socket, std::ptr::null())
            };
            if rc != 0 {
                return Err(Error::dpdk("rte_eth_tx_queue_setup", rc));
            }
        }
        self.pools.push(pool.clone());
        let guard = Arc::new(PortGuard {
            id: self.id,
            _pools: self.pools.clone(),
            _token: object_token(),
        });
        self.guard = Some(guard.clone());
        let rx = (0..config.rx_queues)
            .map(|q| RxQueue {
                port: self.id,
                queue: q,
                _guard: guard.clone(),
                _not_sync: PhantomData,
            })
            .collect();
        let tx = (0..config.tx_queues)
            .map(|q| TxQueue {
                port: self.id,
                queue: q,
                _guard: guard.clone(),
                _not_sync: PhantomData,
            })
            .collect();
        Ok((rx, tx))
    }

    /// Starts the port.
    pub fn start(&mut self) -> Result<()> {
        // SAFETY: valid, configured port id.
        let rc = unsafe { dpdk_sys::rte_eth_dev_start(self.id) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_start", rc));
        }
        self.started = true;
        Ok(())
    }

    /// Stops the port (queues keep their configuration).
    pub fn stop(&mut self) -> Result<()> {
        // SAFETY: valid port id.
        let rc = unsafe { dpdk_sys::rte_eth_dev_stop(self.id) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_stop", rc));
        }
        self.started = false;
        Ok(())
    }

    /// Receives every packet whatever its destination MAC.
    pub fn set_promiscuous(&self, on: bool) -> Result<()> {
        // SAFETY: valid port id.
        let rc = unsafe {
            if on {
                dpdk_sys::rte_eth_promiscuous_enable(self.id)
            } else {
                dpdk_sys::rte_eth_promiscuous_disable(self.id)
            }
        };
        if rc != 0 && rc != -(libc::ENOTSUP) {
            return Err(Error::dpdk("rte_eth_promiscuous_enable", rc));
        }
        Ok(())
    }

    /// The port's MAC address.
    pub fn mac_addr(&self) -> Result<[u8; 6]> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_macaddr_get(self.id, &mut addr) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_macaddr_get", rc));
        }
        Ok(addr.addr_bytes)
    }

    /// The link state now.
    pub fn link(&self) -> Result<LinkStatus> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.id, &mut link) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_link_get_nowait", rc));
        }
        Ok(LinkStatus {
            up: link.link_status() != 0,
            speed_mbps: link.link_speed,
            full_duplex: link.link_duplex() != 0,
        })
    }

    /// Polls the link until it is up or `timeout` has passed.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<LinkStatus> {
        let start = Instant::now();
        loop {
            let link = self.link()?;
            if link.up {
                return Ok(link);
            }
            if start.elapsed() >= timeout {
                return Err(Error::LinkDown {
                    port: self.id,
                    waited_ms: start.elapsed().as_millis() as u64,
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Basic counters.
    pub fn stats(&self) -> Result<PortStats> {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid port id and out-pointer.
        let rc = unsafe { dpdk_sys::rte_eth_stats_get(self.id, &mut s) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_stats_get", rc));
        }
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the basic counters.
    pub fn reset_stats(&self) -> Result<()> {
        // SAFETY: valid port id.
        let rc = unsafe { dpdk_sys::rte_eth_stats_reset(self.id) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_stats_reset", rc));
        }
        Ok(())
    }

    /// Extended counters, by name.
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        // SAFETY: NULL with size 0 asks for the count.
        let n = unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, std::ptr::null_mut(), 0) };
        if n < 0 {
            return Err(Error::dpdk("rte_eth_xstats_get_names", n));
        }
        let n = n as usize;
        let mut names = vec![dpdk_sys::rte_eth_xstat_name::default(); n];
        let mut values = vec![dpdk_sys::rte_eth_xstat::default(); n];
        // SAFETY: both arrays have room for n entries.
        let got_names =
            unsafe { dpdk_sys::rte_eth_xstats_get_names(self.id, names.as_mut_ptr(), n as u32) };
        // SAFETY: as above.
        let got_values =
            unsafe { dpdk_sys::rte_eth_xstats_get(self.id, values.as_mut_ptr(), n as u32) };
        if got_names < 0 || got_values < 0 {
            return Err(Error::dpdk("rte_eth_xstats_get", got_names.min(got_values)));
        }
        let count = (got_names as usize).min(got_values as usize).min(n);
        Ok(values[..count]
            .iter()
            .filter_map(|v| {
                let name = names.get(v.id as usize)?;
                // SAFETY: DPDK NUL-terminates names within the fixed-size array.
                let text = unsafe { CStr::from_ptr(name.name.as_ptr()) };
                Some((text.to_string_lossy().into_owned(), v.value))
            })
            .collect())
    }

    /// The RSS key and hash types in use.
    pub fn rss_hash_conf(&self) -> Result<RssConfig> {
        let info = self.info()?;
        let mut key = vec![0u8; usize::from(info.hash_key_size.max(40))];
        // Newer DPDK releases add fields (the hash algorithm); keep them at their defaults.
        #[allow(clippy::needless_update)]
        let mut conf = dpdk_sys::rte_eth_rss_conf {
            rss_key: key.as_mut_ptr(),
            rss_key_len: key.len() as u8,
            ..Default::default()
        };
        // SAFETY: valid port id; conf points at a key buffer of rss_key_len bytes.
        let rc = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.id, &mut conf) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_rss_hash_conf_get", rc));
        }
        key.truncate(usize::from(conf.rss_key_len));
        Ok(RssConfig {
            key: Some(key),
            hash_types: conf.rss_hf,
        })
    }

    /// Changes the RSS key and/or hash types while running.
    pub fn rss_hash_update(&self, rss: &RssConfig) -> Result<()> {
        let mut key = rss.key.clone().unwrap_or_default();
        if rss.key.is_some() {
            check_key(&key)?;
        }
        // Newer DPDK releases add fields (the hash algorithm); keep them at their defaults.
        #[allow(clippy::needless_update)]
        let mut conf = dpdk_sys::rte_eth_rss_conf {
            rss_key: if key.is_empty() {
                std::ptr::null_mut()
            } else {
                key.as_mut_ptr()
            },
            rss_key_len: key.len() as u8,
            rss_hf: rss.hash_types,
            ..Default::default()
        };
        // SAFETY: valid port id; the key buffer lives across the call.
        let rc = unsafe { dpdk_sys::rte_eth_dev_rss_hash_update(self.id, &mut conf) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_rss_hash_update", rc));
        }
        Ok(())
    }

    /// The redirection table: entry i is the queue for hashes with `hash % len == i`.
    pub fn reta(&self) -> Result<Vec<u16>> {
        let size = usize::from(self.info()?.reta_size);
        if size == 0 {
            return Err(Error::dpdk("rte_eth_dev_rss_reta_query", libc::ENOTSUP));
        }
        let mut groups = reta_groups(size);
        // SAFETY: groups covers `size` entries, as DPDK requires.
        let rc = unsafe {
            dpdk_sys::rte_eth_dev_rss_reta_query(self.id, groups.as_mut_ptr(), size as u16)
        };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_rss_reta_query", rc));
        }
        let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        Ok((0..size)
            .map(|i| groups[i / group].reta[i % group])
            .collect())
    }

    /// Writes the redirection table (its length must be the device's RETA size).
    pub fn set_reta(&self, reta: &[u16]) -> Result<()> {
        let size = reta.len();
        let mut groups = reta_groups(size);
        let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        for (i, &queue) in reta.iter().enumerate() {
            groups[i / group].reta[i % group] = queue;
        }
        let size16 = u16::try_from(size)
            .map_err(|_| Error::InvalidArgument(format!("RETA of {size} entries")))?;
        // SAFETY: groups covers `size` entries.
        let rc =
            unsafe { dpdk_sys::rte_eth_dev_rss_reta_update(self.id, groups.as_mut_ptr(), size16) };
        if rc != 0 {
            return Err(Error::dpdk("rte_eth_dev_rss_reta_update", rc));
        }
        Ok(())
    }
}

impl Drop for Port {
    fn drop(&mut self) {
        // A configured port is stopped and closed by its guard once the last queue handle
        // is gone. An unconfigured handle changes nothing: the device may be in use
        // through another handle.
    }
}

fn check_key(key: &[u8]) -> Result<()> {
    if key.len() == 40 || key.len() == 52 {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "RSS key of {} bytes; 40 or 52 expected",
            key.len()
        )))
    }
}

fn reta_groups(size: usize) -> Vec<dpdk_sys::rte_eth_rss_reta_entry64> {
    let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
    (0..size.div_ceil(group))
        .map(|g| {
            let entries = (size - g * group).min(group);
            dpdk_sys::rte_eth_rss_reta_entry64 {
                mask: if entries == 64 {
                    u64::MAX
                } else {
                    (1u64 << entries) - 1
                },
                reta: [0; 64],
            }
        })
        .collect()
}

/// A receive queue, used by one lcore at a time (`Send`, not `Sync`).
#[derive(Debug)]
pub struct RxQueue {
    port: u16,
    queue: u16,
    _guard: Arc<PortGuard>,
    _not_sync: PhantomData<Cell<()>>,
}

impl RxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Receives into the free slots of `burst`; returns how many arrived.
    #[inline]
    pub fn rx_burst(&mut self, burst: &mut Burst) -> usize {
        let (ptr, room) = burst.spare();
        if room == 0 {
            return 0;
        }
        // SAFETY: the port and queue are configured and kept open by the guard; ptr has
        // room for `room` mbuf pointers; `&mut self` makes this the only user of the queue.
        let n = unsafe { dpdk_sys::l4lab_rx_burst(self.port, self.queue, ptr, room as u16) };
        // SAFETY: DPDK wrote n owned mbufs into the free slots.
        unsafe { burst.filled(usize::from(n)) };
        usize::from(n)
    }
}

/// A transmit queue, used by one lcore at a time (`Send`, not `Sync`).
#[derive(Debug)]
pub struct TxQueue {
    port: u16,
    queue: u16,
    _guard: Arc<PortGuard>,
    _not_sync: PhantomData<Cell<()>>,
}

impl TxQueue {
    /// The port.
    pub fn port(&self) -> PortId {
        PortId(self.port)
    }

    /// The queue index.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Sends from the front of `burst`; what the device did not take stays in `burst`
    /// (in order), for the caller to retry or drop. Returns how many were sent.
    #[inline]
    pub fn tx_burst(&mut self, burst: &mut Burst) -> usize {
        let (ptr, len) = burst.held();
        if len == 0 {
            return 0;
        }
        // SAFETY: port and queue configured and kept open by the guard; ptr holds len
        // owned mbufs; `&mut self` makes this the only user of the queue.
        let n = unsafe { dpdk_sys::l4lab_tx_burst(self.port, self.queue, ptr, len as u16) };
        // SAFETY: the device now owns the first n mbufs.
        unsafe { burst.consumed(usize::from(n)) };
        usize::from(n)
    }
}

/// DPDK's `RTE_ETH_RSS_*` hash-type bits and `RTE_ETH_*_OFFLOAD_*` bits, as `u64`, from the
/// headers this crate was built against.
pub mod bits {
    /// IPv4 addresses.
    pub const RSS_IPV4: u64 = dpdk_sys::RTE_ETH_RSS_IPV4 as u64;
    /// IPv4 fragments.
    pub const RSS_FRAG_IPV4: u64 = dpdk_sys::RTE_ETH_RSS_FRAG_IPV4 as u64;
    /// IPv4 + TCP ports.
    pub const RSS_IPV4_TCP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_TCP as u64;
    /// IPv4 + UDP ports.
    pub const RSS_IPV4_UDP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_UDP as u64;
    /// Other IPv4.
    pub const RSS_IPV4_OTHER: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV4_OTHER as u64;
    /// IPv6 addresses.
    pub const RSS_IPV6: u64 = dpdk_sys::RTE_ETH_RSS_IPV6 as u64;
    /// IPv6 fragments.
    pub const RSS_FRAG_IPV6: u64 = dpdk_sys::RTE_ETH_RSS_FRAG_IPV6 as u64;
    /// IPv6 + TCP ports.
    pub const RSS_IPV6_TCP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV6_TCP as u64;
    /// IPv6 + UDP ports.
    pub const RSS_IPV6_UDP: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV6_UDP as u64;
    /// Other IPv6.
    pub const RSS_IPV6_OTHER: u64 = dpdk_sys::RTE_ETH_RSS_NONFRAG_IPV6_OTHER as u64;
    /// Transmit IPv4 header checksum offload.
    pub const TX_IPV4_CKSUM: u64 = dpdk_sys::RTE_ETH_TX_OFFLOAD_IPV4_CKSUM as u64;
    /// Transmit TCP checksum offload.
    pub const TX_TCP_CKSUM: u64 = dpdk_sys::RTE_ETH_TX_OFFLOAD_TCP_CKSUM as u64;
    /// Transmit UDP checksum offload.
    pub const TX_UDP_CKSUM: u64 = dpdk_sys::RTE_ETH_TX_OFFLOAD_UDP_CKSUM as u64;
}
