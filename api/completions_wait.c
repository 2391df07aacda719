/* Completions without a blocked HTTP thread: a non-streaming request's
 * connection is suspended while its sequence runs and resumed when it ends;
 * a stream's is suspended whenever it has nothing to send and resumed when
 * its sequence has new output or a keep-alive is due (see completions.h).
 * One waiter thread per server does the resuming and watches the parked
 * sockets for clients that hang up.
 *
 * Lifetimes: a wait belongs to its request (rg_conn) or its stream's
 * response. While parked it is also on the waiter's list, which only the
 * waiter thread removes from, and only when it resumes the connection;
 * libmicrohttpd cannot end a suspended connection, so a wait on the list is
 * always alive. The engine's callbacks run under the engine's lock, and the
 * owner releases its sequence (which takes that lock) before it frees the
 * wait, so no callback outlives it. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "api/completions.h"
#include "common/fs.h"
#include "common/log.h"

struct rg_completion_wait {
    rg_completion_waiter *w;
    rg_completion c;
    rg_generator *g;
    rg_gen_seq *seq;
    struct MHD_Connection *conn;
    int fd;                  /* the client socket, -1 when unknown */
    atomic_int ready;        /* set by the engine: finished, or (a stream) new output */
    int64_t wake_at_us;      /* (under w->mu) a stream's keep-alive time, 0 = none */
    int cancelled;           /* (waiter thread) the client hung up: cancel sent */
    rg_completion_wait *next; /* (under w->mu) the parked list */
};

struct rg_completion_waiter {
    pthread_mutex_t mu;
    pthread_t thread;
    int efd; /* eventfd: something finished, was parked, or stop */
    int stopping;
    rg_completion_wait *parked;
};

static void waiter_wake(rg_completion_waiter *w)
{
    uint64_t one = 1;
    /* non-blocking; a full counter still leaves the thread woken */
    ssize_t rc = write(w->efd, &one, sizeof one);
    (void)rc;
}

/* The engine's on_finish / on_output: under its lock, so only a flag and a
 * wakeup. */
static void wait_on_ready(void *ctx)
{
    rg_completion_wait *cw = ctx;
    /* a stream is told of every piece: wake only on 0 -> 1, as the waiter
     * (or the reader's next arm) has not seen this readiness yet */
    if (!atomic_exchange(&cw->ready, 1))
        waiter_wake(cw->w);
}

/* Takes every wait that is ready or due off the list (under mu); *next_us
 * becomes the earliest deadline left, 0 when none. */
static rg_completion_wait *take_ready(rg_completion_waiter *w, int64_t now_us, int64_t *next_us)
{
    rg_completion_wait *done = NULL, **pp = &w->parked;
    *next_us = 0;
    while (*pp) {
        rg_completion_wait *cw = *pp;
        if (atomic_load(&cw->ready) || (cw->wake_at_us && cw->wake_at_us <= now_us)) {
            *pp = cw->next;
            cw->next = done;
            done = cw;
        } else {
            if (cw->wake_at_us && (!*next_us || cw->wake_at_us < *next_us))
                *next_us = cw->wake_at_us;
            pp = &cw->next;
        }
    }
    return done;
}

static void resume_all(rg_completion_wait *list)
{
    while (list) {
        rg_completion_wait *next = list->next;
        list->next = NULL;
        MHD_resume_connection(list->conn); /* the request may be answered and freed from here on */
        list = next;
    }
}

static void *waiter_main(void *arg)
{
    rg_completion_waiter *w = arg;
    struct pollfd *fds = NULL;
    rg_completion_wait **who = NULL;
    size_t cap = 0;
    for (;;) {
        pthread_mutex_lock(&w->mu);
        if (w->stopping) {
            pthread_mutex_unlock(&w->mu);
            break;
        }
        int64_t now = clock_mono_us(), next_us;
        rg_completion_wait *done = take_ready(w, now, &next_us);
        size_t n = 0;
        for (rg_completion_wait *cw = w->parked; cw; cw = cw->next)
            n++;
        if (n + 1 > cap) {
            size_t c = cap ? cap : 64;
            while (c < n + 1)
                c *= 2;
            struct pollfd *nf = realloc(fds, c * sizeof *nf);
            if (nf)
                fds = nf;
            rg_completion_wait **nw = nf ? realloc(who, c * sizeof *nw) : NULL;
            if (nw)
                who = nw;
            if (nf && nw)
                cap = c;
        }
        /* out of memory for the poll set: watch as many sockets as fit and
         * poll briefly, so finishing still works */
        size_t watched = n + 1 <= cap ? n : (cap ? cap - 1 : 0);
        struct pollfd one;
        struct pollfd *set = cap ? fds : &one;
        set[0].fd = w->efd;
        set[0].events = POLLIN;
        set[0].revents = 0;
        size_t k = 1;
        for (rg_completion_wait *cw = w->parked; cw && k <= watched; cw = cw->next, k++) {
            /* a cancelled one is only waited for: its socket would keep
             * reporting the hang-up */
            set[k].fd = cw->cancelled ? -1 : cw->fd;
            set[k].events = POLLRDHUP;
            set[k].revents = 0;
            who[k] = cw;
        }
        pthread_mutex_unlock(&w->mu);
        resume_all(done);

        int timeout_ms = next_us ? (int)((next_us - now + 999) / 1000) : -1;
        if (watched < n && (timeout_ms < 0 || timeout_ms > 100))
            timeout_ms = 100;
        int rc = poll(set, (nfds_t)(watched + 1), timeout_ms);
        if (rc < 0 && errno != EINTR) {
            LOG_WARN("completion waiter: poll: %s", strerror(errno));
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
            continue;
        }
        if (rc > 0 && (set[0].revents & POLLIN)) {
            uint64_t count;
            ssize_t r = read(w->efd, &count, sizeof count);
            (void)r;
        }
        for (size_t i = 1; rc > 0 && i <= watched; i++) {
            /* entries leave the list only here, so who[i] is still parked */
            if (set[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) {
                who[i]->cancelled = 1;
                generator_cancel(who[i]->seq); /* its finish follows at the engine's next step */
            }
        }
    }
    free(fds);
    free(who);
    return NULL;
}

rg_status completion_waiter_start(rg_completion_waiter **out, rg_err *e)
{
    rg_completion_waiter *w = calloc(1, sizeof *w);
    if (!w)
        return rg_error(e, RG_ERR_NOMEM, "out of memory");
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0) {
        free(w);
        return rg_error(e, RG_ERR_IO, "eventfd: %s", strerror(errno));
    }
    pthread_mutex_init(&w->mu, NULL);
    if (pthread_create(&w->thread, NULL, waiter_main, w) != 0) {
        pthread_mutex_destroy(&w->mu);
        close(w->efd);
        free(w);
        return rg_error(e, RG_ERR_INTERNAL, "cannot start the completion waiter thread");
    }
    *out = w;
    return RG_OK;
}

void completion_waiter_stop(rg_completion_waiter *w)
{
    if (!w || w->stopping)
        return;
    pthread_mutex_lock(&w->mu);
    w->stopping = 1;
    pthread_mutex_unlock(&w->mu);
    waiter_wake(w);
    pthread_join(w->thread, NULL);
    /* what is still parked is cancelled and answered as a shutdown */
    pthread_mutex_lock(&w->mu);
    rg_completion_wait *list = w->parked;
    w->parked = NULL;
    pthread_mutex_unlock(&w->mu);
    for (rg_completion_wait *cw = list; cw; cw = cw->next)
        generator_cancel(cw->seq);
    resume_all(list);
}

void completion_waiter_free(rg_completion_waiter *w)
{
    if (!w)
        return;
    completion_waiter_stop(w);
    pthread_mutex_destroy(&w->mu);
    close(w->efd);
    free(w);
}

rg_completion_wait *completion_wait_new(rg_completion_waiter *w, rg_gen_request *req, const rg_completion *c,
                                        int stream)
{
    rg_completion_wait *cw = calloc(1, sizeof *cw);
    if (!cw)
        return NULL;
    cw->w = w;
    cw->c = *c;
    cw->fd = -1;
    if (stream) {
        req->on_output = wait_on_ready;
        req->on_output_ctx = cw;
    } else {
        req->on_finish = wait_on_ready;
        req->on_finish_ctx = cw;
    }
    return cw;
}

void completion_wait_bind(rg_completion_wait *cw, rg_generator *g, rg_gen_seq *seq)
{
    cw->g = g;
    cw->seq = seq;
}

rg_gen_seq *completion_wait_seq(const rg_completion_wait *cw)
{
    return cw->seq;
}

int completion_wait_client_gone(const rg_completion_wait *cw)
{
    return cw->cancelled; /* written by the waiter before it resumed cw */
}

void completion_wait_free(rg_completion_wait *cw)
{
    if (!cw)
        return;
    generator_release(cw->seq); /* cancels it if it still runs; no on_finish after this */
    free(cw);
}

static void park_free(void *ctx)
{
    completion_wait_free(ctx);
}

/* Puts a suspended connection's wait on the list, unless the waiter is
 * stopping (nobody would resume it then): returns -1 and lists nothing. */
static int list_parked(rg_completion_wait *cw, struct MHD_Connection *conn, int64_t wake_at_us)
{
    rg_completion_waiter *w = cw->w;
    if (!cw->conn) {
        cw->conn = conn;
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        cw->fd = ci ? ci->connect_fd : -1;
    }
    pthread_mutex_lock(&w->mu);
    int stopping = w->stopping;
    if (!stopping) {
        cw->wake_at_us = wake_at_us;
        cw->next = w->parked;
        w->parked = cw;
    }
    pthread_mutex_unlock(&w->mu);
    if (!stopping)
        waiter_wake(w); /* it may be ready already */
    return stopping ? -1 : 0;
}

static void park(rg_request *r)
{
    rg_completion_wait *cw = r->res.park_ctx;
    if (list_parked(cw, r->conn, 0)) { /* answer the shutdown now */
        generator_cancel(cw->seq);
        MHD_resume_connection(r->conn);
    }
}

void completion_wait_arm(rg_completion_wait *cw)
{
    atomic_store(&cw->ready, 0);
}

int completion_wait_suspend(rg_completion_wait *cw, struct MHD_Connection *conn, int64_t wake_at_us)
{
    MHD_suspend_connection(conn);
    if (list_parked(cw, conn, wake_at_us)) {
        MHD_resume_connection(conn);
        return -1;
    }
    return 0;
}

static void unpark(rg_request *r)
{
    rg_completion_wait *cw = r->res.park_ctx;
    r->res.park = NULL;
    r->res.unpark = NULL;
    r->res.park_free = NULL;
    r->res.park_ctx = NULL;
    rg_gen_output out;
    gen_output_init(&out);
    int rc = 0;
    /* finished (or cancelled at shutdown): everything is in the channel */
    while (out.finish == RG_GEN_RUNNING && (rc = generator_read(cw->seq, 0, &out)) > 0)
        ;
    if (rc < 0)
        http_error(r, 500, "internal_error", "out of memory for the generated text");
    else if (cw->cancelled) /* nobody reads it; 499 as nginx logs it, not a server error */
        http_error(r, 499, "client_closed_request", "the client closed the connection");
    else if (out.finish == RG_GEN_RUNNING || out.finish == RG_GEN_CANCELLED)
        http_error(r, 503, "unavailable", "the server is shutting down");
    else
        completion_answer(r, cw->g, &cw->c, &out);
    gen_output_free(&out);
    completion_wait_free(cw);
}

void completion_wait_park(rg_request *r, rg_completion_wait *cw)
{
    r->res.park = park;
    r->res.unpark = unpark;
    r->res.park_free = park_free;
    r->res.park_ctx = cw;
}
