//! The Environment Abstraction Layer: initialised once per process, cleaned up on drop.

use std::ffi::{c_char, c_int, CString};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::error::{Error, Result};
use crate::port::PortId;

/// Set while an `Eal` exists (and forever after a cleanup: DPDK cannot start twice).
static EAL_TAKEN: AtomicBool = AtomicBool::new(false);
/// Set while the EAL is initialised and not yet cleaned up.
static EAL_LIVE: AtomicBool = AtomicBool::new(false);
/// DPDK objects (mempools, ports, rings, flow rules) not yet released. `Eal::drop` only
/// calls `rte_eal_cleanup` when this is zero; otherwise it leaves cleanup to process exit.
static LIVE_OBJECTS: AtomicUsize = AtomicUsize::new(0);

/// Fails unless the EAL is up; every constructor of a DPDK object calls this first.
pub(crate) fn ensure_live() -> Result<()> {
    if EAL_LIVE.load(Ordering::Acquire) {
        Ok(())
    } else {
        Err(Error::InvalidArgument(
            "the DPDK EAL is not initialised (create an Eal first)".into(),
        ))
    }
}

/// Counts one more live DPDK object; the returned token uncounts it on drop.
pub(crate) fn object_token() -> ObjectToken {
    LIVE_OBJECTS.fetch_add(1, Ordering::AcqRel);
    ObjectToken(())
}

/// Keeps `Eal::drop` from cleaning up while the object that holds it exists.
#[derive(Debug)]
pub(crate) struct ObjectToken(());

impl Drop for ObjectToken {
    fn drop(&mut self) {
        LIVE_OBJECTS.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The calling thread's `rte_errno`.
pub fn rte_errno() -> i32 {
    // SAFETY: reads a thread-local int; no preconditions.
    unsafe { dpdk_sys::l4lab_errno() }
}

/// EAL arguments, built up and then passed to `rte_eal_init`.
#[derive(Debug, Clone)]
pub struct EalBuilder {
    args: Vec<String>,
}

impl Default for EalBuilder {
    fn default() -> Self {
        EalBuilder {
            args: vec!["l4lab".to_owned()],
        }
    }
}

impl EalBuilder {
    /// Starts with only the program name.
    pub fn new() -> EalBuilder {
        EalBuilder::default()
    }

    /// Adds one raw EAL argument.
    pub fn arg(mut self, arg: impl Into<String>) -> EalBuilder {
        self.args.push(arg.into());
        self
    }

    /// Adds raw EAL arguments, as a user would give them after `--`.
    pub fn args<I, S>(mut self, args: I) -> EalBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// `--no-huge`: anonymous memory instead of hugepages (tests, CI).
    pub fn no_huge(self) -> EalBuilder {
        self.arg("--no-huge")
    }

    /// `--no-pci`: skip the PCI bus scan.
    pub fn no_pci(self) -> EalBuilder {
        self.arg("--no-pci")
    }

    /// `--file-prefix`: keeps concurrent DPDK processes apart.
    pub fn file_prefix(self, prefix: &str) -> EalBuilder {
        self.arg(format!("--file-prefix={prefix}"))
    }

    /// `--lcores`: the lcore to CPU map, e.g. `0@0,1@1`.
    pub fn lcores(self, map: &str) -> EalBuilder {
        self.arg(format!("--lcores={map}"))
    }

    /// `--vdev`: a virtual device with its arguments, e.g. `net_null0,size=64`.
    pub fn vdev(self, spec: &str) -> EalBuilder {
        self.arg(format!("--vdev={spec}"))
    }

    /// `-m`: memory to reserve, in MiB.
    pub fn memory_mb(self, mb: u32) -> EalBuilder {
        self.arg("-m").arg(mb.to_string())
    }

    /// `--log-level`.
    pub fn log_level(self, level: &str) -> EalBuilder {
        self.arg(format!("--log-level={level}"))
    }

    /// The arguments as they will be passed (program name first).
    pub fn as_args(&self) -> &[String] {
        &self.args
    }

    /// Initialises the EAL. At most one `Eal` exists per process.
    pub fn init(self) -> Result<Eal> {
        if EAL_TAKEN.swap(true, Ordering::AcqRel) {
            return Err(Error::EalAlreadyInitialised);
        }
        let mut owned = Vec::with_capacity(self.args.len());
        for arg in &self.args {
            match CString::new(arg.as_str()) {
                Ok(c) => owned.push(c),
                Err(_) => {
                    EAL_TAKEN.store(false, Ordering::Release);
                    return Err(Error::InvalidArgument(format!(
                        "EAL argument {arg:?} contains a NUL byte"
                    )));
                }
            }
        }
        // DPDK may keep pointers into argv (and permutes it), so argv lives as long as the
        // process: a few bytes, once.
        let argv: &'static mut [*mut c_char] = Box::leak(
            owned
                .into_iter()
                .map(CString::into_raw)
                .chain(std::iter::once(std::ptr::null_mut()))
                .collect::<Vec<_>>()
                .into_boxed_slice(),
        );
        let argc = (argv.len() - 1) as c_int;
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, and is
        // never freed; EAL_TAKEN guarantees no concurrent or repeated call from this crate.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            let err = Error::from_rte_errno("rte_eal_init");
            // DPDK allows a retry after some failures (argument errors) and answers
            // EALREADY itself after others, so let the next caller ask it.
            EAL_TAKEN.store(false, Ordering::Release);
            return Err(err);
        }
        EAL_LIVE.store(true, Ordering::Release);
        Ok(Eal {
            _not_send: std::marker::PhantomData,
        })
    }
}

/// The initialised EAL. Dropping it calls `rte_eal_cleanup` once every DPDK object made
/// through this crate is gone.
#[derive(Debug)]
pub struct Eal {
    // The EAL belongs to the main lcore's thread.
    _not_send: std::marker::PhantomData<*mut ()>,
}

impl Eal {
    /// Shorthand for [`EalBuilder::new`].
    pub fn builder() -> EalBuilder {
        EalBuilder::new()
    }

    /// The main lcore (the one that called `rte_eal_init`).
    pub fn main_lcore(&self) -> u32 {
        // SAFETY: the EAL is initialised (self exists).
        unsafe { dpdk_sys::rte_get_main_lcore() }
    }

    /// Worker lcores, in id order, excluding the main lcore.
    pub fn worker_lcores(&self) -> Vec<u32> {
        let mut lcores = Vec::new();
        // SAFETY: the EAL is initialised; -1 as u32 starts the iteration.
        let mut next = unsafe { dpdk_sys::rte_get_next_lcore(u32::MAX, 1, 0) };
        while next < dpdk_sys::RTE_MAX_LCORE {
            lcores.push(next);
            // SAFETY: as above, continuing from a valid lcore id.
            next = unsafe { dpdk_sys::rte_get_next_lcore(next, 1, 0) };
        }
        lcores
    }

    /// Enabled lcores, the main one included.
    pub fn lcore_count(&self) -> u32 {
        // SAFETY: the EAL is initialised.
        unsafe { dpdk_sys::rte_lcore_count() }
    }

    /// Ethernet ports that DPDK knows, in id order.
    pub fn ports(&self) -> Vec<PortId> {
        let mut ports = Vec::new();
        let owner = u64::from(dpdk_sys::RTE_ETH_DEV_NO_OWNER);
        // SAFETY: the EAL is initialised; any start id is accepted.
        let mut id = unsafe { dpdk_sys::rte_eth_find_next_owned_by(0, owner) };
        while id < u64::from(dpdk_sys::RTE_MAX_ETHPORTS) {
            ports.push(PortId(id as u16));
            // SAFETY: as above.
            id = unsafe { dpdk_sys::rte_eth_find_next_owned_by(id as u16 + 1, owner) };
        }
        ports
    }

    /// Creates a virtual device after start (hot plug), e.g. `("net_ring0", "")`, and
    /// returns its port. An unknown driver or bad devargs come back as DPDK's error.
    pub fn add_vdev(&self, name: &str, devargs: &str) -> Result<PortId> {
        let c_name = CString::new(name)
            .map_err(|_| Error::InvalidArgument(format!("vdev name {name:?} has a NUL")))?;
        let c_args = CString::new(devargs)
            .map_err(|_| Error::InvalidArgument(format!("devargs {devargs:?} have a NUL")))?;
        // SAFETY: both strings are valid and NUL-terminated for the duration of the call.
        let rc = unsafe { dpdk_sys::rte_vdev_init(c_name.as_ptr(), c_args.as_ptr()) };
        if rc != 0 {
            return Err(Error::dpdk("rte_vdev_init", rc));
        }
        PortId::by_name(name)
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        if LIVE_OBJECTS.load(Ordering::Acquire) != 0 {
            // Something still refers to DPDK memory; the process exit releases it.
            return;
        }
        EAL_LIVE.store(false, Ordering::Release);
        // SAFETY: the EAL was initialised by this process and no object made through this
        // crate is alive; after this no DPDK call is made (ensure_live fails).
        unsafe { dpdk_sys::rte_eal_cleanup() };
    }
}
