/* hardrun-oci's compiled front: the calls engines make several times per container, answered
 * without starting Python when nothing but the container's record is needed.
 *
 * scripts/setup.sh builds this as `hardrun-oci` in the virtualenv's bin/, beside the Python
 * command (renamed `hardrun-oci-py`), which stays the reference: every call this front does
 * not answer itself is handed to it unchanged (execv), and so is every call where anything is
 * unusual (another option, a missing record, an untrusted directory, hooks to run, --debug).
 * It answers:
 *
 *   state ID          from the record `create` wrote (state.light, hardrun.runtime.oci's
 *                     Container.light_record): the same bytes as the Python command prints;
 *   start ID          a created container without poststart hooks: opens its exec.fifo;
 *   kill ID [SIGNAL]  signals the init once its start time shows it is still the container's
 *                     (through a pidfd, so the pid checked is the pid signalled);
 *   delete ID         only when the container does not exist (the shim's second delete).
 *
 * It decides nothing about confinement: the state directory is trusted only as the Python
 * command trusts it (the root and every directory above it, the container's directory and
 * its record: ours, closed to others, never a symbolic link), else the call goes to Python. */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_ROOT "/run/hardrun-oci"
#define PYTHON_FRONT "hardrun-oci-py"
#define LIGHT_FILE "state.light"
#define FIFO_FILE "exec.fifo"
#define LIGHT_MAGIC "hardrun-oci-light 1"
#define MAX_RECORD 65536
#define MAX_CGROUPS 16

static char **original_argv;
struct call;
static const struct call *current_call;     /* its --log, as far as it is parsed */
static void fail(const struct call *call, const char *message);

/* ---------------------------------------------------------------- handing over to Python */

/* The call, unchanged but for argv[0], to the Python command beside this binary. One it
 * cannot run is an error in the --log too: engines show the log, not stderr. */
static void python(void) {
    char self[PATH_MAX], target[PATH_MAX], message[256];
    ssize_t length = readlink("/proc/self/exe", self, sizeof self - 1);
    if (length > 0) {
        self[length] = 0;
        char *slash = strrchr(self, '/');
        if (slash != NULL) {
            *slash = 0;
            if (snprintf(target, sizeof target, "%s/%s", self, PYTHON_FRONT) < (int)sizeof target) {
                original_argv[0] = target;
                execv(target, original_argv);
            }
        }
    }
    snprintf(message, sizeof message, "cannot run %s beside this front: %s", PYTHON_FRONT, strerror(errno));
    fail(current_call, message);
}

/* ---------------------------------------------------------------- the command line */

struct call {
    const char *root, *log, *log_format, *command, *id, *signal;
    int force;
};

static int value_option(const char *name) {
    return !strcmp(name, "--root") || !strcmp(name, "--log") || !strcmp(name, "--log-format")
        || !strcmp(name, "--policy") || !strcmp(name, "--userns");
}

/* Only the forms engines use; anything else is Python's to parse (and to refuse). */
static void parse(int argc, char **argv, struct call *call) {
    int index = 1;
    call->root = DEFAULT_ROOT;
    call->log_format = "text";
    for (; index < argc && argv[index][0] == '-'; index++) {
        const char *name = argv[index];
        if (!strcmp(name, "--no-floor") || !strcmp(name, "--explain"))
            continue;          /* create's options: no bearing on the calls answered here */
        if (!value_option(name) || index + 1 >= argc)
            python();
        const char *value = argv[++index];
        if (!strcmp(name, "--root"))
            call->root = value;
        else if (!strcmp(name, "--log"))
            call->log = value;
        else if (!strcmp(name, "--log-format"))
            call->log_format = value;
        else if (!strcmp(name, "--userns") && strcmp(value, "auto") && strcmp(value, "keep"))
            python();
    }
    if (strcmp(call->log_format, "text") && strcmp(call->log_format, "json"))
        python();
    if (index >= argc)
        python();
    call->command = argv[index++];
    if (!strcmp(call->command, "delete") && index < argc
            && (!strcmp(argv[index], "--force") || !strcmp(argv[index], "-f"))) {
        call->force = 1;
        index++;
    }
    if (index >= argc || argv[index][0] == '-')
        python();
    call->id = argv[index++];
    if (!strcmp(call->command, "kill") && index < argc && argv[index][0] != '-')
        call->signal = argv[index++];
    if (index != argc)
        python();
}

/* hardrun.runtime.oci.check_id: letters, digits and - _ . + (ASCII here; Python's wider
 * idea of a letter goes to Python). */
static void check_id(const char *id) {
    size_t length = strlen(id);
    if (length == 0 || length > 1024 || !strcmp(id, ".") || !strcmp(id, ".."))
        python();
    for (const char *c = id; *c; c++)
        if (!isalnum((unsigned char)*c) && !strchr("-_.+", *c))
            python();
}

/* ---------------------------------------------------------------- errors */

/* The Python command's error: one line on stderr and one in the --log file, in its format
 * (the messages written here hold only an id, which needs no escaping in either). */
static void fail(const struct call *call, const char *message) {
    if (call != NULL && call->log != NULL) {
        char stamp[32], line[2048];
        time_t now = time(NULL);
        struct tm utc;
        strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&now, &utc));
        int length = !strcmp(call->log_format, "json")
            ? snprintf(line, sizeof line, "{\"level\": \"error\", \"msg\": \"%s\", \"time\": \"%s\"}\n", message, stamp)
            : snprintf(line, sizeof line, "time=\"%s\" level=error msg=\"%s\"\n", stamp, message);
        int fd = open(call->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0 && length > 0 && length < (int)sizeof line) {
            if (write(fd, line, length) < 0) { /* as Python: a log that cannot be written is skipped */ }
        }
        if (fd >= 0)
            close(fd);
    }
    fprintf(stderr, "hardrun-oci: %s\n", message);
    exit(1);
}

/* ---------------------------------------------------------------- trusting the state */

/* hardrun.runtime.state.trusted_root, for a root reached without symbolic links (a link, a
 * relative path, `.` or `..` go to Python, which resolves them): each directory above owned by
 * root or us and not writable by others unless sticky; the root itself a directory of ours
 * closed to group and others. 0 when it is not so (Python then says why), -1 when it is missing. */
static int trusted_ancestor(const struct stat *info) {
    return S_ISDIR(info->st_mode) && (info->st_uid == 0 || info->st_uid == geteuid())
        && (!(info->st_mode & 022) || (info->st_mode & S_ISVTX));
}

static int trusted_root(const char *root) {
    char path[PATH_MAX] = "/";
    struct stat info;
    size_t used = 1;
    if (root[0] != '/' || lstat("/", &info) != 0 || !trusted_ancestor(&info))
        return 0;
    for (const char *name = root; *name;) {
        while (*name == '/')
            name++;
        size_t length = strcspn(name, "/");
        if (length == 0)
            break;
        if ((length == 1 && name[0] == '.') || (length == 2 && !strncmp(name, "..", 2))
                || used + length + 2 >= sizeof path)
            return 0;
        if (used > 1)
            path[used++] = '/';
        memcpy(path + used, name, length);
        used += length;
        path[used] = 0;
        name += length;
        if (lstat(path, &info) != 0)
            return errno == ENOENT ? -1 : 0;
        while (*name == '/')
            name++;
        if (*name == 0)       /* the root itself */
            return S_ISDIR(info.st_mode) && info.st_uid == geteuid() && !(info.st_mode & 077) ? 1 : 0;
        if (!trusted_ancestor(&info))
            return 0;         /* a symbolic link too: Python resolves those */
    }
    return 0;
}

struct record {
    pid_t pid;
    unsigned long long start_time;
    int poststart;
    int cgroups;
    char *cgroup[MAX_CGROUPS];
    char *head, *middle, *tail;
    int directory;            /* the container's state directory, opened by load */
    char text[MAX_RECORD + 1];
};

/* A decimal as Python writes one (digits only, no sign, no leading zero) of at most `most`. */
static int decimal(const char *text, unsigned long long most, unsigned long long *value) {
    *value = 0;
    if (text[0] < '1' || text[0] > '9')
        return 0;
    for (const char *digit = text; *digit; digit++) {
        unsigned number = (unsigned)(*digit - '0');
        if (*digit < '0' || *digit > '9' || *value > (most - number) / 10)
            return 0;
        *value = *value * 10 + number;
    }
    return 1;
}

/* The record's lines, exactly as Container.light_record writes them: each key once (cgroups
 * aside, at most MAX_CGROUPS of them, absolute), integers in range, none missing. Anything
 * else (`fallback`, a damaged or foreign record) is -1: Python reads state.json instead. */
static int parse_record(struct record *record) {
    char *line = record->text, *next;
    unsigned long long number;
    int seen_pid = 0, seen_start = 0, seen_poststart = 0;
    if (strncmp(line, LIGHT_MAGIC "\n", sizeof LIGHT_MAGIC))
        return -1;
    for (line += sizeof LIGHT_MAGIC; *line; line = next) {
        next = strchr(line, '\n');
        if (next == NULL)
            return -1;
        *next++ = 0;
        char *value = strchr(line, ' ');
        if (value == NULL)
            return -1;
        *value++ = 0;
        if (!strcmp(line, "pid") && !seen_pid++ && decimal(value, INT_MAX, &number))
            record->pid = (pid_t)number;
        else if (!strcmp(line, "start_time") && !seen_start++ && decimal(value, ULLONG_MAX, &number))
            record->start_time = number;
        else if (!strcmp(line, "poststart") && !seen_poststart++ && (!strcmp(value, "0") || !strcmp(value, "1")))
            record->poststart = value[0] == '1';
        else if (!strcmp(line, "cgroup") && record->cgroups < MAX_CGROUPS && value[0] == '/')
            record->cgroup[record->cgroups++] = value;
        else if (!strcmp(line, "head") && !record->head)
            record->head = value;
        else if (!strcmp(line, "middle") && !record->middle)
            record->middle = value;
        else if (!strcmp(line, "tail") && !record->tail)
            record->tail = value;
        else
            return -1;
    }
    return seen_pid && seen_start && seen_poststart && record->head && record->middle && record->tail ? 1 : -1;
}

/* The container's directory and its record, trusted as Container.load trusts them, each
 * checked through the descriptor it is then read by; 0 when the container does not exist,
 * -1 for anything Python should look at. `record->directory` stays open for the call. */
static int load(const char *root, const char *id, struct record *record, char *directory, size_t size) {
    struct stat info;
    if (snprintf(directory, size, "%s/%s", root, id) >= (int)size)
        return -1;
    /* O_NOFOLLOW|O_DIRECTORY: a link or anything but a directory fails the open itself */
    int dir = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dir < 0)
        return errno == ENOENT ? 0 : -1;
    record->directory = dir;
    if (fstat(dir, &info) != 0 || info.st_uid != geteuid() || (info.st_mode & 077))
        return -1;
    int fd = openat(dir, LIGHT_FILE, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t length = -1;
    if (fstat(fd, &info) == 0 && S_ISREG(info.st_mode) && info.st_uid == geteuid() && !(info.st_mode & 077))
        length = read(fd, record->text, MAX_RECORD);
    close(fd);
    if (length <= 0 || length >= MAX_RECORD || memchr(record->text, 0, length))
        return -1;
    record->text[length] = 0;
    return parse_record(record);
}

/* ---------------------------------------------------------------- the container's status */

/* hardrun.runtime.process.running: the pid runs, is not a zombie, and started when the
 * record says (field 22 of /proc/PID/stat), else it is another process or none. */
static int alive(const struct record *record) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)record->pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t length = read(fd, text, sizeof text - 1);
    close(fd);
    if (length <= 0)
        return 0;
    text[length] = 0;
    char *after = strrchr(text, ')');
    if (after == NULL || after[1] != ' ')
        return 0;
    char *field = after + 2;
    if (*field == 'Z' || *field == 'X')
        return 0;
    for (int number = 3; number < 22; number++) {    /* field 3 is the state */
        field = strchr(field, ' ');
        if (field == NULL)
            return 0;
        field++;
    }
    return strtoull(field, NULL, 10) == record->start_time;
}

static int frozen(const struct record *record) {
    static const char *files[][2] = {{"freezer.state", "FROZEN"}, {"cgroup.freeze", "1"}};
    for (int index = 0; index < record->cgroups; index++) {
        for (int kind = 0; kind < 2; kind++) {
            char path[PATH_MAX], text[64];
            if (snprintf(path, sizeof path, "%s/%s", record->cgroup[index], files[kind][0]) >= (int)sizeof path)
                continue;
            int fd = open(path, O_RDONLY | O_CLOEXEC);
            if (fd < 0)
                continue;
            ssize_t length = read(fd, text, sizeof text - 1);
            close(fd);
            if (length < 0)
                continue;     /* Python's OSError: the next file (a directory of that name, say) */
            /* Python's: the first file found decides; its text stripped of white space */
            while (length > 0 && isspace((unsigned char)text[length - 1]))
                length--;
            text[length > 0 ? length : 0] = 0;
            return !strcmp(text, files[kind][1]);
        }
    }
    return 0;
}

static const char *status(const struct record *record) {
    struct stat info;
    if (!alive(record))
        return "stopped";
    if (fstatat(record->directory, FIFO_FILE, &info, 0) == 0)    /* os.path.exists: links followed */
        return "created";
    return frozen(record) ? "paused" : "running";
}

/* ---------------------------------------------------------------- the calls */

static int state(const struct record *record) {
    const char *now = status(record);
    printf("%s\"%s\"%s%d%s\n", record->head, now, record->middle, strcmp(now, "stopped") ? (int)record->pid : 0,
           record->tail);
    return fflush(stdout) == 0 ? 0 : 1;
}

static int start(const struct call *call, const struct record *record) {
    char message[1200], byte;
    struct stat info;
    if (record->poststart || strcmp(status(record), "created"))
        python();             /* hooks to run, or an error for Python to word */
    /* opened through the checked directory, without blocking; a link or anything but a FIFO
     * is Python's to judge */
    int fd = openat(record->directory, FIFO_FILE, O_RDONLY | O_NONBLOCK | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        python();
    if (fstat(fd, &info) != 0 || !S_ISFIFO(info.st_mode)) {
        close(fd);
        python();
    }
    for (;;) {               /* as Python: an init that died meanwhile is not waited for */
        ssize_t got = read(fd, &byte, 1);
        if (got == 1)
            break;
        if (got < 0 && errno != EAGAIN && errno != EINTR) {
            close(fd);
            python();
        }
        if (!alive(record)) {
            close(fd);
            unlinkat(record->directory, FIFO_FILE, 0);
            snprintf(message, sizeof message, "container %s: its init died before it was started", call->id);
            fail(call, message);
        }
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    close(fd);
    unlinkat(record->directory, FIFO_FILE, 0);
    return 0;
}

static int signal_number(const char *text) {
    static const char *names[] = {"HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1",
                                  "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP",
                                  "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH",
                                  "IO", "PWR", "SYS"};
    char upper[16];
    size_t length = strlen(text);
    if (length == 0 || length >= sizeof upper)
        return 0;
    for (size_t index = 0; index <= length; index++)
        upper[index] = (char)toupper((unsigned char)text[index]);
    if (strspn(upper, "0123456789") == length) {
        long number = length <= 3 ? strtol(upper, NULL, 10) : 0;
        return number > 0 && number < 65 ? (int)number : 0;
    }
    const char *name = strncmp(upper, "SIG", 3) ? upper : upper + 3;
    for (int index = 0; index < (int)(sizeof names / sizeof *names); index++)
        if (!strcmp(name, names[index]))
            return index + 1;
    return 0;
}

static int kill_init(const struct record *record, const char *signal_text) {
    int number = signal_number(signal_text ? signal_text : "TERM");
    if (number == 0)
        python();             /* Python words the usage error */
    int pidfd = (int)syscall(SYS_pidfd_open, record->pid, 0);
    if (pidfd < 0)
        python();             /* gone, or no pidfds: Python decides */
    /* checked after the pidfd is held: the process checked is the one signalled */
    if (!strcmp(status(record), "stopped")) {
        close(pidfd);
        python();
    }
    long result = syscall(SYS_pidfd_send_signal, pidfd, number, NULL, 0);
    close(pidfd);
    return result == 0 || errno == ESRCH ? 0 : (python(), 1);
}

int main(int argc, char **argv) {
    struct call call = {0};
    static struct record record = {.directory = -1};
    char directory[PATH_MAX], message[1200];
    original_argv = argv;
    current_call = &call;
    parse(argc, argv, &call);
    int is_delete = !strcmp(call.command, "delete");
    if (strcmp(call.command, "state") && strcmp(call.command, "start") && strcmp(call.command, "kill") && !is_delete)
        python();
    check_id(call.id);
    if (trusted_root(call.root) != 1)
        python();
    int found = load(call.root, call.id, &record, directory, sizeof directory);
    if (found == 0 && is_delete) {
        snprintf(message, sizeof message, "container %s does not exist", call.id);
        fail(&call, message);
    }
    if (found != 1 || is_delete)
        python();
    if (!strcmp(call.command, "state"))
        return state(&record);
    if (!strcmp(call.command, "start"))
        return start(&call, &record);
    return kill_init(&record, call.signal);
}
