/*
 * Exported wrappers for DPDK's `static inline` fast-path functions, which bindgen cannot
 * link against. Each one is a direct call; the compiler inlines the DPDK body into it.
 */
#ifndef L4LAB_SHIM_H
#define L4LAB_SHIM_H

#include <stdint.h>

struct rte_mbuf;
struct rte_mempool;
struct rte_ring;

uint16_t l4lab_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t l4lab_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);

struct rte_mbuf *l4lab_pktmbuf_alloc(struct rte_mempool *mp);
int l4lab_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n);
/*
 * rte_pktmbuf_alloc_bulk, and each mbuf's data is then `len` bytes (one segment, contents
 * unspecified): the reset and the length in one pass, one call per burst. Returns 0, or
 * -EINVAL when `len` does not fit the pool's data room after the headroom, or -ENOENT
 * when the pool has fewer than `n` mbufs (then nothing was taken).
 */
int l4lab_pktmbuf_alloc_bulk_len(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned int n,
                                 uint16_t len);
void l4lab_pktmbuf_free(struct rte_mbuf *m);
void l4lab_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned int n);
char *l4lab_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *l4lab_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
char *l4lab_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int l4lab_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t l4lab_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t l4lab_pktmbuf_tailroom(const struct rte_mbuf *m);
void l4lab_pktmbuf_reset(struct rte_mbuf *m);

unsigned int l4lab_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned int n,
                                      unsigned int *free_space);
unsigned int l4lab_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned int n,
                                      unsigned int *available);
unsigned int l4lab_ring_count(const struct rte_ring *r);

unsigned int l4lab_lcore_id(void);
int l4lab_errno(void);
uint64_t l4lab_rdtsc(void);
uint64_t l4lab_tsc_hz(void);

/* Toeplitz hash as DPDK computes it in software (rte_softrss); input in host-order words. */
uint32_t l4lab_softrss(uint32_t *input_tuple, uint32_t input_len, const uint8_t *rss_key);

/* Benchmark reference loop (bench.c): returns the packets received. */
uint64_t l4lab_bench_loopback(uint16_t port, uint16_t queue, struct rte_mempool *mp,
                              uint64_t packets, uint16_t frame_len);

#endif
