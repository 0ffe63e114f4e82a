#include <errno.h>

#include <rte_config.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_thash.h>

#include "shim.h"

uint16_t l4lab_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_rx_burst(port, queue, pkts, n);
}

uint16_t l4lab_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
	return rte_eth_tx_burst(port, queue, pkts, n);
}

struct rte_mbuf *l4lab_pktmbuf_alloc(struct rte_mempool *mp)
{
	return rte_pktmbuf_alloc(mp);
}

int l4lab_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n)
{
	return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

int l4lab_pktmbuf_alloc_bulk_len(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n,
				 uint16_t len)
{
	/* Every mbuf of a pool has the same room: check it once, not per mbuf. */
	if (len > rte_pktmbuf_data_room_size(mp) - RTE_MIN(RTE_PKTMBUF_HEADROOM,
							   rte_pktmbuf_data_room_size(mp)))
		return -EINVAL;
	if (rte_mempool_get_bulk(mp, (void **)mbufs, n) != 0)
		return -ENOENT;
	for (unsigned int i = 0; i < n; i++) {
		struct rte_mbuf *m = mbufs[i];

		__rte_mbuf_raw_sanity_check(m);
		rte_pktmbuf_reset(m);
		m->data_len = len;
		m->pkt_len = len;
	}
	return 0;
}

void l4lab_pktmbuf_free(struct rte_mbuf *m)
{
	rte_pktmbuf_free(m);
}

void l4lab_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int n)
{
	rte_pktmbuf_free_bulk(mbufs, n);
}

char *l4lab_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_prepend(m, len);
}

char *l4lab_pktmbuf_append(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_append(m, len);
}

char *l4lab_pktmbuf_adj(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_adj(m, len);
}

int l4lab_pktmbuf_trim(struct rte_mbuf *m, uint16_t len)
{
	return rte_pktmbuf_trim(m, len);
}

uint16_t l4lab_pktmbuf_headroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_headroom(m);
}

uint16_t l4lab_pktmbuf_tailroom(const struct rte_mbuf *m)
{
	return rte_pktmbuf_tailroom(m);
}

void l4lab_pktmbuf_reset(struct rte_mbuf *m)
{
	rte_pktmbuf_reset(m);
}

unsigned int l4lab_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n,
				      unsigned int *free_space)
{
	return rte_ring_enqueue_burst(r, objs, n, free_space);
}

unsigned int l4lab_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n,
				      unsigned int *available)
{
	return rte_ring_dequeue_burst(r, objs, n, available);
}

unsigned int l4lab_ring_count(const struct rte_ring *r)
{
	return rte_ring_count(r);
}

unsigned int l4lab_lcore_id(void)
{
	return rte_lcore_id();
}

int l4lab_errno(void)
{
	return rte_errno;
}

uint64_t l4lab_rdtsc(void)
{
	return rte_rdtsc();
}

uint64_t l4lab_tsc_hz(void)
{
	return rte_get_tsc_hz();
}

uint32_t l4lab_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key)
{
	return rte_softrss(input_tuple, input_len, rss_key);
}
