#include "api/metrics.h"

#include <string.h>

static const double bucket_bounds[METRICS_BUCKETS] = {0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0};

void metrics_init(rg_metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_destroy(rg_metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

void metrics_observe(rg_metrics *m, const char *route, unsigned status, double seconds)
{
    pthread_mutex_lock(&m->mu);
    size_t i;
    for (i = 0; i < m->n_series; i++)
        if (m->series[i].status == status && strcmp(m->series[i].route, route) == 0)
            break;
    if (i == m->n_series && m->n_series < METRICS_MAX_SERIES) {
        m->series[i].route = route;
        m->series[i].status = status;
        m->n_series++;
    }
    if (i < m->n_series)
        m->series[i].count++;

    for (i = 0; i < m->n_latency; i++)
        if (strcmp(m->latency[i].route, route) == 0)
            break;
    if (i == m->n_latency && m->n_latency < METRICS_MAX_SERIES) {
        m->latency[i].route = route;
        m->n_latency++;
    }
    if (i < m->n_latency) {
        rg_metric_latency *l = &m->latency[i];
        for (int b = 0; b < METRICS_BUCKETS; b++)
            if (seconds <= bucket_bounds[b]) {
                l->buckets[b]++;
                break;
            }
        l->count++;
        l->sum += seconds;
    }
    pthread_mutex_unlock(&m->mu);
}

rg_status metrics_render(rg_metrics *m, rg_buf *out, rg_err *e)
{
    rg_status st = RG_OK;
    pthread_mutex_lock(&m->mu);
    st = rg_buf_append_str(out,
                           "# HELP ragd_http_requests_total HTTP requests by route and status.\n"
                           "# TYPE ragd_http_requests_total counter\n",
                           e);
    for (size_t i = 0; i < m->n_series && !st; i++)
        st = rg_buf_printf(out, e, "ragd_http_requests_total{route=\"%s\",status=\"%u\"} %llu\n", m->series[i].route,
                           m->series[i].status, m->series[i].count);
    if (!st)
        st = rg_buf_append_str(out,
                               "# HELP ragd_http_request_duration_seconds HTTP request latency by route.\n"
                               "# TYPE ragd_http_request_duration_seconds histogram\n",
                               e);
    for (size_t i = 0; i < m->n_latency && !st; i++) {
        const rg_metric_latency *l = &m->latency[i];
        unsigned long long cumulative = 0;
        for (int b = 0; b < METRICS_BUCKETS && !st; b++) {
            cumulative += l->buckets[b];
            st = rg_buf_printf(out, e, "ragd_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                               l->route, bucket_bounds[b], cumulative);
        }
        if (!st)
            st = rg_buf_printf(out, e,
                               "ragd_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n"
                               "ragd_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n"
                               "ragd_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                               l->route, l->count, l->route, l->sum, l->route, l->count);
    }
    pthread_mutex_unlock(&m->mu);
    return st;
}
