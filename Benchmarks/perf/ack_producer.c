/*
 * ack_producer: acknowledged-ingest load in C, for Benchmarks/perf/ack_ingest.py --producer c.
 *
 * Why: on a 2-vCPU machine the Python producers (4 threads under one interpreter lock, plus
 * pyzmq's I/O thread) take ~0.8 CPU-s per million events, a third of what the daemon has; the
 * fire-and-forget side of the comparison is sent by a C program (ztransport). This producer
 * does the same work as ack_ingest.py's threads -- P DEALER sockets, each sending
 * [producer-id, sequence, payload] with up to W batches outstanding and waiting for every
 * reply -- at a fraction of the CPU, so the figure is the daemon's.
 *
 *   ack_producer -e ENDPOINT -f NDJSON [-P producers=4] [-b events_per_batch=100] [-w window=1]
 *
 * Prints one JSON line: {"secs","accepted","batches","p50_ms","p99_ms","cpu_s"}.
 * Build: cc -O2 -o ack_producer ack_producer.c -lzmq -lpthread
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

typedef struct { char *data; size_t len; } buf_t;

static buf_t *batches;
static size_t nbatches;
static int producers = 4, window = 1;
static const char *endpoint;
static void *ctx;
static pthread_barrier_t barrier;

typedef struct {
    int k;
    long long accepted;
    size_t done;
    double *lat;   /* seconds, one per batch of this producer */
} result_t;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "ack_producer: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static void *run(void *arg) {
    result_t *r = arg;
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_connect(s, endpoint) != 0) die("connect");
    char pid[64];
    int pidlen = snprintf(pid, sizeof pid, "bench-producer-%d", r->k);
    size_t mine = 0;
    for (size_t i = r->k; i < nbatches; i += producers) mine++;
    r->lat = calloc(mine ? mine : 1, sizeof(double));
    double *sent = calloc(mine ? mine : 1, sizeof(double));
    size_t next = 0, done = 0;
    pthread_barrier_wait(&barrier);
    while (done < mine) {
        while (next < mine && next - done < (size_t)window) {
            buf_t *b = &batches[r->k + next * producers];
            char seq[24];
            int seqlen = snprintf(seq, sizeof seq, "%zu", next + 1);
            sent[next] = now();
            if (zmq_send(s, pid, pidlen, ZMQ_SNDMORE) < 0 || zmq_send(s, seq, seqlen, ZMQ_SNDMORE) < 0 ||
                zmq_send(s, b->data, b->len, 0) < 0) die("send");
            next++;
        }
        /* Reply: [sequence, status]. */
        char seq[32], status[4096];
        int n = zmq_recv(s, seq, sizeof seq - 1, 0);
        if (n < 0) die("recv");
        seq[n < (int)sizeof seq - 1 ? n : (int)sizeof seq - 1] = 0;
        int more = 0;
        size_t ml = sizeof more;
        zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
        if (!more) { fprintf(stderr, "ack_producer: reply without a status\n"); exit(1); }
        n = zmq_recv(s, status, sizeof status - 1, 0);
        if (n < 0) die("recv");
        status[n < (int)sizeof status - 1 ? n : (int)sizeof status - 1] = 0;
        size_t idx = strtoull(seq, NULL, 10) - 1;
        if (idx >= mine) { fprintf(stderr, "ack_producer: unexpected sequence %s\n", seq); exit(1); }
        r->lat[done] = now() - sent[idx];
        const char *a = strstr(status, "\"accepted\":");
        if (!a || strstr(status, "\"error\"")) { fprintf(stderr, "ack_producer: bad reply %s\n", status); exit(1); }
        r->accepted += strtoll(a + 11, NULL, 10);
        done++;
    }
    r->done = done;
    free(sent);
    zmq_close(s);
    return NULL;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *file = NULL;
    int per = 100, c;
    while ((c = getopt(argc, argv, "e:f:P:b:w:")) != -1) {
        switch (c) {
        case 'e': endpoint = optarg; break;
        case 'f': file = optarg; break;
        case 'P': producers = atoi(optarg); break;
        case 'b': per = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        default: fprintf(stderr, "usage: ack_producer -e ENDPOINT -f NDJSON [-P 4] [-b 100] [-w 1]\n"); return 2;
        }
    }
    if (!endpoint || !file || producers < 1 || per < 1 || window < 1) {
        fprintf(stderr, "usage: ack_producer -e ENDPOINT -f NDJSON [-P 4] [-b 100] [-w 1]\n");
        return 2;
    }
    FILE *f = fopen(file, "rb");
    if (!f) { perror(file); return 1; }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *all = malloc(size + 1);
    if (fread(all, 1, size, f) != (size_t)size) { perror("read"); return 1; }
    fclose(f);
    all[size] = 0;
    /* Lines -> batches "[l1,l2,...]" of `per` lines, as ack_ingest.py builds them. */
    size_t cap = 1024;
    batches = malloc(cap * sizeof(buf_t));
    char *p = all, *end = all + size;
    while (p < end) {
        size_t len = 2, lines = 0;
        char *q = p;
        while (q < end && lines < (size_t)per) {
            char *nl = memchr(q, '\n', end - q);
            char *e = nl ? nl : end;
            if (e > q) { len += (e - q) + 1; lines++; }
            q = nl ? nl + 1 : end;
        }
        if (lines == 0) break;
        char *out = malloc(len), *w = out;
        *w++ = '[';
        q = p;
        size_t taken = 0;
        while (q < end && taken < lines) {
            char *nl = memchr(q, '\n', end - q);
            char *e = nl ? nl : end;
            if (e > q) {
                if (taken) *w++ = ',';
                memcpy(w, q, e - q);
                w += e - q;
                taken++;
            }
            q = nl ? nl + 1 : end;
        }
        *w++ = ']';
        if (nbatches == cap) batches = realloc(batches, (cap *= 2) * sizeof(buf_t));
        batches[nbatches++] = (buf_t){out, (size_t)(w - out)};
        p = q;
    }
    free(all);

    ctx = zmq_ctx_new();
    pthread_barrier_init(&barrier, NULL, producers + 1);
    pthread_t *threads = calloc(producers, sizeof(pthread_t));
    result_t *results = calloc(producers, sizeof(result_t));
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    for (int k = 0; k < producers; k++) {
        results[k].k = k;
        pthread_create(&threads[k], NULL, run, &results[k]);
    }
    pthread_barrier_wait(&barrier);
    double t0 = now();
    for (int k = 0; k < producers; k++) pthread_join(threads[k], NULL);
    double secs = now() - t0;
    getrusage(RUSAGE_SELF, &ru1);
    long long accepted = 0;
    size_t total = 0;
    for (int k = 0; k < producers; k++) { accepted += results[k].accepted; total += results[k].done; }
    double *lat = malloc((total ? total : 1) * sizeof(double));
    size_t n = 0;
    for (int k = 0; k < producers; k++) for (size_t i = 0; i < results[k].done; i++) lat[n++] = results[k].lat[i];
    qsort(lat, n, sizeof(double), cmp);
    double cpu = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) / 1e6 +
                 (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) / 1e6;
    printf("{\"secs\": %.6f, \"accepted\": %lld, \"batches\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"cpu_s\": %.3f}\n",
           secs, accepted, total, n ? lat[n / 2] * 1000 : 0, n ? lat[(size_t)(n * 0.99)] * 1000 : 0, cpu);
    zmq_ctx_term(ctx);
    return 0;
}
