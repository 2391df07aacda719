/* metrics.h - request counters and latency histograms for /v1/metrics. */
#ifndef RAGD_API_METRICS_H
#define RAGD_API_METRICS_H

#include <pthread.h>

#include "common/buf.h"

#define METRICS_MAX_SERIES 64
#define METRICS_BUCKETS 10

typedef struct rg_metric_series {
    const char *route; /* static route pattern */
    unsigned status;
    unsigned long long count;
} rg_metric_series;

typedef struct rg_metric_latency {
    const char *route;
    unsigned long long buckets[METRICS_BUCKETS]; /* cumulative at render time */
    unsigned long long count;
    double sum;
} rg_metric_latency;

typedef struct rg_metrics {
    pthread_mutex_t mu;
    rg_metric_series series[METRICS_MAX_SERIES];
    size_t n_series;
    rg_metric_latency latency[METRICS_MAX_SERIES];
    size_t n_latency;
} rg_metrics;

void metrics_init(rg_metrics *m);
void metrics_destroy(rg_metrics *m);
/* Counts one finished request; route must be a static string. */
void metrics_observe(rg_metrics *m, const char *route, unsigned status, double seconds);
/* Appends the request metrics in Prometheus text format. */
rg_status metrics_render(rg_metrics *m, rg_buf *out, rg_err *e);

#endif
