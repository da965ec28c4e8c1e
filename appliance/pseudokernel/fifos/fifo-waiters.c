// fifo-waiters: reports the threads of this host that wait in open() of a FIFO for its
// other end (the kernel's wait_for_partner), so the appliance's FIFO relay can join a
// reader on one node with a writer on another. fanotify's FAN_OPEN_PERM would be the
// event-driven way, but Linux (6.x) reports no permission events for FIFOs: the open
// never reaches fanotify, nor the FUSE server (the kernel serves a FIFO itself). So this
// looks at each thread's /proc wchan: every INTERVAL ms while it is active, every IDLE ms
// otherwise. A look reads a file per thread of the host (about 15 us of CPU each), so
// looking every 20 ms all the time cost a node a tenth of a core when idle and 43 % of
// one with 100 containers (1,400 threads). The FUSE server does see the lookup that precedes an open
// of a FIFO in its file system: the appliance then writes a line to stdin, which makes
// the helper active (at once) for ACTIVE ms; it also stays active while a thread it
// reported still waits, so that its `done` comes in time.
//
// Output, one line per change (stdout, line-buffered):
//   wait TID DEV R|W PATH   a thread began waiting: DEV is the st_dev of the FIFO, PATH
//                           its path inside the file system of DEV (e.g. /fs/p), as the
//                           thread's mount table places it
//   done TID                a reported thread waits no more (its open went on or failed)
// It exits when its stdin closes (its parent is gone).
// Usage: fifo-waiters [INTERVAL_MS [IDLE_MS [ACTIVE_MS]]] (20, 5000, 10000 by default)
//
// `fifo-waiters read PATH` copies the FIFO at PATH to stdout until EOF, opening it without
// waiting (then blocking reads): the relay's read end, which must not wait for a writer
// that may have written and closed already (its bytes are still in the pipe).
// x86_64 and aarch64 syscall numbers; the open's flags are the 3rd argument of openat
// (the 2nd of open), its path pointer is read from /proc/TID/mem.
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#define MAX_WAITERS 4096
#ifdef __x86_64__
#define NR_OPEN 2
#endif
#define NR_OPENAT 257
#ifdef __aarch64__
#undef NR_OPENAT
#define NR_OPENAT 56
#endif

static int reported[MAX_WAITERS];
static int reported_count;

static int read_text(const char *path, char *buf, size_t size) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  ssize_t n = read(fd, buf, size - 1);
  close(fd);
  if (n < 0) return -1;
  buf[n] = 0;
  return (int)n;
}

// Lexically normalises an absolute path in place ("." and ".." and repeated slashes).
static void normalise(char *path) {
  char out[PATH_MAX * 2];
  size_t len = 0;
  char *save = NULL;
  for (char *part = strtok_r(path, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    if (!strcmp(part, ".")) continue;
    if (!strcmp(part, "..")) {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--;
      continue;
    }
    size_t n = strlen(part);
    if (len + n + 2 > sizeof out) return;
    out[len++] = '/';
    memcpy(out + len, part, n);
    len += n;
  }
  if (len == 0) out[len++] = '/';
  out[len] = 0;
  strcpy(path, out);
}

// The path of `name` (absolute, in the thread's view) inside the file system `dev`: the
// thread's mount of that file system whose mount point is the longest prefix of `name`.
static int path_in_fs(int tid, dev_t dev, const char *name, char *out, size_t size) {
  char file[64], line[8192];
  snprintf(file, sizeof file, "/proc/%d/mountinfo", tid);
  FILE *f = fopen(file, "re");
  if (!f) return -1;
  size_t best = 0;
  int found = -1;
  while (fgets(line, sizeof line, f)) {
    unsigned major_, minor_;
    char root[PATH_MAX], point[PATH_MAX];
    if (sscanf(line, "%*u %*u %u:%u %4095s %4095s", &major_, &minor_, root, point) != 4) continue;
    if (makedev(major_, minor_) != dev || strchr(root, '\\') || strchr(point, '\\')) continue;
    size_t n = strcmp(point, "/") ? strlen(point) : 0;
    if (strncmp(name, point, n) || (name[n] != '/' && name[n] != 0) || (found == 0 && n < best)) continue;
    best = n;
    snprintf(out, size, "%s%s", strcmp(root, "/") ? root : "", name[n] ? name + n : "/");
    found = 0;
  }
  fclose(f);
  return found;
}

// Reports `tid` when it waits in an open of a FIFO; returns 1 when reported.
static int report_waiter(int tid) {
  char file[64], text[512];
  snprintf(file, sizeof file, "/proc/%d/syscall", tid);
  if (read_text(file, text, sizeof text) <= 0) return 0;
  long nr;
  unsigned long long a[3];
  if (sscanf(text, "%ld %llx %llx %llx", &nr, &a[0], &a[1], &a[2]) != 4) return 0;
  int dirfd;
  unsigned long long pathp, flags;
  if (nr == NR_OPENAT) {
    dirfd = (int)a[0], pathp = a[1], flags = a[2];
#ifdef NR_OPEN
  } else if (nr == NR_OPEN) {
    dirfd = AT_FDCWD, pathp = a[0], flags = a[1];
#endif
  } else {
    return 0;
  }
  char name[PATH_MAX];
  snprintf(file, sizeof file, "/proc/%d/mem", tid);
  int mem = open(file, O_RDONLY | O_CLOEXEC);
  if (mem < 0) return 0;
  ssize_t n = pread(mem, name, sizeof name - 1, (off_t)pathp);
  close(mem);
  if (n <= 0) return 0;
  name[n] = 0;
  if (strnlen(name, sizeof name) == sizeof name - 1) return 0;

  // Where the name starts from, in the thread's view (for the mount table) and in ours (to stat it).
  char base[PATH_MAX] = "", link[PATH_MAX], host[PATH_MAX * 2], full[PATH_MAX * 2];
  if (name[0] == '/') {
    snprintf(host, sizeof host, "/proc/%d/root%s", tid, name);
    snprintf(full, sizeof full, "%s", name);
  } else {
    if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%d/cwd", tid);
    else snprintf(link, sizeof link, "/proc/%d/fd/%d", tid, dirfd);
    ssize_t l = readlink(link, base, sizeof base - 1);
    if (l <= 0) return 0;
    base[l] = 0;
    snprintf(host, sizeof host, "%s/%s", link, name);
    snprintf(full, sizeof full, "%s/%s", base, name);
  }
  struct stat st;
  if (stat(host, &st) < 0 || !S_ISFIFO(st.st_mode)) return 0;
  normalise(full);
  char inside[PATH_MAX * 2];
  if (path_in_fs(tid, st.st_dev, full, inside, sizeof inside) < 0) return 0;
  if (strpbrk(inside, " \n")) return 0;
  printf("wait %d %llu %c %s\n", tid, (unsigned long long)st.st_dev, (flags & O_ACCMODE) == O_RDONLY ? 'R' : 'W', inside);
  return 1;
}

static int is_reported(int tid) {
  for (int i = 0; i < reported_count; i++) if (reported[i] == tid) return 1;
  return 0;
}

static void scan(void) {
  int now[MAX_WAITERS], count = 0;
  DIR *procs = opendir("/proc");
  if (!procs) return;
  for (struct dirent *p; (p = readdir(procs));) {
    if (p->d_name[0] < '1' || p->d_name[0] > '9') continue;
    char dir[320];
    snprintf(dir, sizeof dir, "/proc/%s/task", p->d_name);
    DIR *tasks = opendir(dir);
    if (!tasks) continue;
    for (struct dirent *t; (t = readdir(tasks));) {
      if (t->d_name[0] < '1' || t->d_name[0] > '9' || count >= MAX_WAITERS) continue;
      char file[600], wchan[64];
      snprintf(file, sizeof file, "/proc/%s/task/%s/wchan", p->d_name, t->d_name);
      if (read_text(file, wchan, sizeof wchan) <= 0 || strcmp(wchan, "wait_for_partner")) continue;
      int tid = atoi(t->d_name);
      if (is_reported(tid) || report_waiter(tid)) now[count++] = tid;
    }
    closedir(tasks);
  }
  closedir(procs);
  for (int i = 0; i < reported_count; i++) {
    int still = 0;
    for (int j = 0; j < count && !still; j++) still = now[j] == reported[i];
    if (!still) printf("done %d\n", reported[i]);
  }
  memcpy(reported, now, sizeof(int) * (size_t)count);
  reported_count = count;
  fflush(stdout);
}

static int copy_fifo(const char *path) {
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0 || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0) {
    perror(path);
    return 1;
  }
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      perror(path);
      return 1;
    }
    for (ssize_t at = 0; at < n;) {
      ssize_t w = write(1, buf + at, (size_t)(n - at));
      if (w < 0) return 1;
      at += w;
    }
  }
}

static long long now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int ms_arg(int argc, char **argv, int i, int fallback, int max) {
  if (argc <= i) return fallback;
  int ms = atoi(argv[i]);
  if (ms < 1 || ms > max) {
    fprintf(stderr, "fifo-waiters: argument %d (milliseconds) must be 1..%d, not %s\n", i, max, argv[i]);
    exit(2);
  }
  return ms;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "read")) return copy_fifo(argv[2]);
  int interval = ms_arg(argc, argv, 1, 20, 10000);
  int idle = ms_arg(argc, argv, 2, 5000, 600000);
  int active_for = ms_arg(argc, argv, 3, 10000, 600000);
  long long active_until = 0, last_scan = -1;
  for (;;) {
    long long t = now_ms();
    int active = t < active_until || reported_count > 0;
    if (active || last_scan < 0 || t - last_scan >= idle) {
      scan();
      last_scan = t;
      active = active || reported_count > 0;
    }
    long long wait = active ? interval : idle - (now_ms() - last_scan);
    struct pollfd in = { .fd = 0, .events = POLLIN };
    if (poll(&in, 1, wait < 0 ? 0 : (int)wait) > 0) {
      char buf[256];
      if (read(0, buf, sizeof buf) <= 0) return 0;
      // A poke: look now, and often for a while.
      active_until = now_ms() + active_for;
      last_scan = -1;
    }
  }
}
