//! `rte_flow` rules that steer packets to a queue: match a destination address and
//! optionally a masked TCP/UDP destination port.
//!
//! This is how FULLNAT replies reach the worker that owns the connection on NICs that
//! support it; virtual devices refuse, with [`Error::FlowRefused`], and the caller falls
//! back to RSS-aware local port choice.

use std::ffi::CStr;
use std::net::IpAddr;
use std::ptr::NonNull;

use crate::eal::{ensure_live, object_token, ObjectToken};
use crate::error::{strerror, Error, Result};
use crate::port::PortId;

/// Layer-4 protocol of a port match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Proto {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

/// What a steering rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMatch {
    /// Destination address (exact).
    pub dst: IpAddr,
    /// Protocol, destination port and the port bits that must match.
    pub l4: Option<(L4Proto, u16, u16)>,
}

/// An installed rule; destroyed on drop.
#[derive(Debug)]
pub struct FlowRule {
    port: u16,
    flow: NonNull<dpdk_sys::rte_flow>,
    _token: ObjectToken,
}

// SAFETY: the rule handle is an opaque pointer that DPDK lets any thread destroy.
unsafe impl Send for FlowRule {}

impl FlowRule {
    /// Validates and creates an ingress rule sending `m` to `queue` of `port`.
    pub fn create(port: PortId, m: &FlowMatch, queue: u16) -> Result<FlowRule> {
        ensure_live()?;
        let mut attr = dpdk_sys::rte_flow_attr::default();
        attr.set_ingress(1);

        let mut ip4 = (
            dpdk_sys::rte_flow_item_ipv4::default(),
            dpdk_sys::rte_flow_item_ipv4::default(),
        );
        let mut ip6 = (
            dpdk_sys::rte_flow_item_ipv6::default(),
            dpdk_sys::rte_flow_item_ipv6::default(),
        );
        let mut tcp = (
            dpdk_sys::rte_flow_item_tcp::default(),
            dpdk_sys::rte_flow_item_tcp::default(),
        );
        let mut udp = (
            dpdk_sys::rte_flow_item_udp::default(),
            dpdk_sys::rte_flow_item_udp::default(),
        );

        let mut pattern = [dpdk_sys::rte_flow_item::default(); 4];
        pattern[0].type_ = dpdk_sys::RTE_FLOW_ITEM_TYPE_ETH;
        match m.dst {
            IpAddr::V4(a) => {
                ip4.0.hdr.dst_addr = u32::from_ne_bytes(a.octets());
                ip4.1.hdr.dst_addr = u32::MAX;
                pattern[1] = item(dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV4, &ip4.0, &ip4.1);
            }
            IpAddr::V6(a) => {
                ip6.0.hdr.dst_addr = a.octets();
                ip6.1.hdr.dst_addr = [0xff; 16];
                pattern[1] = item(dpdk_sys::RTE_FLOW_ITEM_TYPE_IPV6, &ip6.0, &ip6.1);
            }
        }
        pattern[2] = match m.l4 {
            None => end_item(),
            Some((L4Proto::Tcp, dport, mask)) => {
                tcp.0.hdr.dst_port = (dport & mask).to_be();
                tcp.1.hdr.dst_port = mask.to_be();
                item(dpdk_sys::RTE_FLOW_ITEM_TYPE_TCP, &tcp.0, &tcp.1)
            }
            Some((L4Proto::Udp, dport, mask)) => {
                udp.0.hdr.dst_port = (dport & mask).to_be();
                udp.1.hdr.dst_port = mask.to_be();
                item(dpdk_sys::RTE_FLOW_ITEM_TYPE_UDP, &udp.0, &udp.1)
            }
        };
        pattern[3] = end_item();

        let queue_conf = dpdk_sys::rte_flow_action_queue { index: queue };
        let actions = [
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: std::ptr::from_ref(&queue_conf).cast(),
            },
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ];

        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: attr, pattern (END-terminated) and actions (END-terminated) and every
        // spec/mask they point to live on this stack frame for the whole call.
        let rc = unsafe {
            dpdk_sys::rte_flow_validate(
                port.0,
                &attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        if rc != 0 {
            return Err(refused(port.0, rc, &error));
        }
        // SAFETY: as above.
        let flow = unsafe {
            dpdk_sys::rte_flow_create(
                port.0,
                &attr,
                pattern.as_ptr(),
                actions.as_ptr(),
                &mut error,
            )
        };
        match NonNull::new(flow) {
            Some(flow) => Ok(FlowRule {
                port: port.0,
                flow,
                _token: object_token(),
            }),
            None => Err(refused(port.0, crate::eal::rte_errno(), &error)),
        }
    }
}

impl Drop for FlowRule {
    fn drop(&mut self) {
        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: the rule was created on this port and is destroyed once.
        unsafe { dpdk_sys::rte_flow_destroy(self.port, self.flow.as_ptr(), &mut error) };
    }
}

fn item<T>(kind: dpdk_sys::rte_flow_item_type, spec: &T, mask: &T) -> dpdk_sys::rte_flow_item {
    dpdk_sys::rte_flow_item {
        type_: kind,
        spec: std::ptr::from_ref(spec).cast(),
        last: std::ptr::null(),
        mask: std::ptr::from_ref(mask).cast(),
    }
}

fn end_item() -> dpdk_sys::rte_flow_item {
    dpdk_sys::rte_flow_item {
        type_: dpdk_sys::RTE_FLOW_ITEM_TYPE_END,
        ..Default::default()
    }
}

fn refused(port: u16, rc: i32, error: &dpdk_sys::rte_flow_error) -> Error {
    let code = rc.abs();
    let reason = if error.message.is_null() {
        strerror(code)
    } else {
        // SAFETY: DPDK sets message to a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(error.message) }
            .to_string_lossy()
            .into_owned();
        format!("{text} ({})", strerror(code))
    };
    Error::FlowRefused { port, code, reason }
}
