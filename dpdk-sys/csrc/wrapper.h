/* The one header bindgen reads: every DPDK API that l4lab binds, plus the shim. */
#include <rte_config.h>
#include <rte_common.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_flow.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_ether.h>
#include <rte_ip.h>
#include <rte_thash.h>
#include <rte_eth_ring.h>
#include <rte_telemetry.h>
#include <rte_dev.h>
#include <rte_bus_vdev.h>

#include "shim.h"
