/*
 * The C reference for the Rust layer's loopback benchmark: the same work per packet
 * (bulk alloc, write 64 bytes, tx burst, rx burst, bulk free) written directly against
 * DPDK, so both can be timed in one process on one port.
 */
#include <string.h>

#include <rte_config.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>

#include "shim.h"

#define L4LAB_BENCH_BURST 32

uint64_t l4lab_bench_loopback(uint16_t port, uint16_t queue, struct rte_mempool *mp,
			      uint64_t packets, uint16_t frame_len)
{
	struct rte_mbuf *tx[L4LAB_BENCH_BURST];
	struct rte_mbuf *rx[L4LAB_BENCH_BURST];
	uint64_t received = 0;
	uint64_t sent = 0;

	while (sent < packets) {
		if (rte_pktmbuf_alloc_bulk(mp, tx, L4LAB_BENCH_BURST) != 0)
			return received;
		for (unsigned int i = 0; i < L4LAB_BENCH_BURST; i++) {
			char *data = rte_pktmbuf_append(tx[i], frame_len);
			if (data == NULL)
				return received;
			memset(data, (int)i, 14);
		}
		uint16_t n = rte_eth_tx_burst(port, queue, tx, L4LAB_BENCH_BURST);
		if (n < L4LAB_BENCH_BURST)
			rte_pktmbuf_free_bulk(&tx[n], L4LAB_BENCH_BURST - n);
		sent += L4LAB_BENCH_BURST;
		uint16_t got = rte_eth_rx_burst(port, queue, rx, L4LAB_BENCH_BURST);
		received += got;
		rte_pktmbuf_free_bulk(rx, got);
	}
	return received;
}
