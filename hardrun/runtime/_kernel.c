/* hardrun.runtime._kernel: the raw system calls the runtime needs and Python's `os`
 * module lacks, without ctypes (whose import costs milliseconds on every `hardrun run`).
 *
 * The module stays generic on purpose: `syscall()` passes integers and buffers through,
 * and every structure is packed and checked in Python (hardrun/runtime/syscalls.py). The
 * GIL is held across each call, as os.fork() holds it, so a clone() child continues
 * like a forked one.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Newer system calls share one number on every architecture (older headers lack them). */
#ifndef SYS_open_tree
#define SYS_open_tree 428
#endif
#ifndef SYS_move_mount
#define SYS_move_mount 429
#endif
#ifndef SYS_bpf
#define SYS_bpf 321     /* x86-64; every architecture's headers define it */
#endif
#ifndef SYS_clone3
#define SYS_clone3 435
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif
#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#endif
#ifndef SYS_landlock_add_rule
#define SYS_landlock_add_rule 445
#endif
#ifndef SYS_landlock_restrict_self
#define SYS_landlock_restrict_self 446
#endif

#define MAX_ARGS 6

/* One argument: None is 0, an int is passed as a machine word (negative values in two's
 * complement, as the kernel reads them), a bytes-like object as a pointer to its data. */
static int
convert_argument(PyObject *value, unsigned long *word, Py_buffer *view, int *has_view)
{
    *has_view = 0;
    if (value == Py_None) {
        *word = 0;
        return 0;
    }
    if (PyLong_Check(value)) {
        *word = PyLong_AsUnsignedLongMask(value);
        return PyErr_Occurred() ? -1 : 0;
    }
    if (PyObject_GetBuffer(value, view, PyBUF_SIMPLE) < 0)
        return -1;
    *has_view = 1;
    *word = (unsigned long)view->buf;
    return 0;
}

PyDoc_STRVAR(syscall_doc,
"syscall(what, number, *args) -> int\n\n"
"Call system call `number` with up to six arguments (None, int, or a bytes-like object\n"
"passed by address; writable objects such as bytearray receive output). Raises OSError\n"
"with errno and `what` as its filename when the call returns -1.");

static PyObject *
kernel_syscall(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long words[MAX_ARGS] = {0};
    Py_buffer views[MAX_ARGS];
    int has_view[MAX_ARGS] = {0};
    Py_ssize_t count = nargs - 2, i;
    long number, result = 0;
    int saved_errno = 0, failed = 0;

    if (nargs < 2 || count > MAX_ARGS) {
        PyErr_SetString(PyExc_TypeError, "syscall(what, number, *args) takes up to 6 arguments");
        return NULL;
    }
    number = PyLong_AsLong(args[1]);
    if (number == -1 && PyErr_Occurred())
        return NULL;
    for (i = 0; i < count && !failed; i++)
        failed = convert_argument(args[i + 2], &words[i], &views[i], &has_view[i]) < 0;
    if (!failed) {
        errno = 0;
        result = syscall(number, words[0], words[1], words[2], words[3], words[4], words[5]);
        saved_errno = errno;
    }
    for (i = 0; i < count; i++) {
        if (has_view[i])
            PyBuffer_Release(&views[i]);
    }
    if (failed)
        return NULL;
    if (result == -1) {
        errno = saved_errno;
        return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, args[0]);
    }
    return PyLong_FromLong(result);
}

PyDoc_STRVAR(syscall_struct_doc,
"syscall_struct(what, number, first, struct, pointers) -> int\n\n"
"Call system call `number` as number(first, struct, len(struct)), the form of bpf(2),\n"
"where `struct` (a writable buffer, e.g. a bytearray packed in Python) holds pointers:\n"
"`pointers` is a sequence of (offset, buffer) pairs, and the address of each buffer's data\n"
"is written as a 64-bit word at its offset first (None writes 0). The buffers are held\n"
"until the call returns; writable ones receive output. Raises OSError as syscall() does.");

static PyObject *
kernel_syscall_struct(PyObject *module, PyObject *args)
{
    PyObject *what, *pointers, *sequence = NULL, *result_object = NULL;
    Py_buffer block, views[MAX_ARGS];
    int has_view[MAX_ARGS] = {0};
    long number, first, result;
    Py_ssize_t count = 0, i, offset;
    int saved_errno;

    if (!PyArg_ParseTuple(args, "Ollw*O:syscall_struct", &what, &number, &first, &block, &pointers))
        return NULL;
    sequence = PySequence_Fast(pointers, "pointers must be a sequence of (offset, buffer)");
    if (sequence == NULL)
        goto done;
    count = PySequence_Fast_GET_SIZE(sequence);
    if (count > MAX_ARGS) {
        PyErr_SetString(PyExc_ValueError, "syscall_struct takes up to 6 pointers");
        count = 0;
        goto done;
    }
    for (i = 0; i < count; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(sequence, i), *buffer;
        unsigned long long address = 0;

        if (!PyArg_ParseTuple(pair, "nO:pointer", &offset, &buffer))
            goto done;
        if (offset < 0 || offset + (Py_ssize_t)sizeof(address) > block.len) {
            PyErr_SetString(PyExc_ValueError, "pointer offset outside the structure");
            goto done;
        }
        if (buffer != Py_None) {
            if (PyObject_GetBuffer(buffer, &views[i], PyBUF_SIMPLE) < 0)
                goto done;
            has_view[i] = 1;
            address = (unsigned long long)(unsigned long)views[i].buf;
        }
        memcpy((char *)block.buf + offset, &address, sizeof(address));
    }
    errno = 0;
    result = syscall(number, first, block.buf, (unsigned long)block.len);
    saved_errno = errno;
    if (result == -1) {
        errno = saved_errno;
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, what);
    } else {
        result_object = PyLong_FromLong(result);
    }
done:
    for (i = 0; i < count; i++) {
        if (has_view[i])
            PyBuffer_Release(&views[i]);
    }
    Py_XDECREF(sequence);
    PyBuffer_Release(&block);
    return result_object;
}

/* Whether `program` holds a whole number of struct sock_filter, 1 to BPF_MAXINSNS of them;
 * if not, it is released and ValueError is set. */
static int
bpf_program_checked(Py_buffer *program)
{
    if (program->len == 0 || program->len % sizeof(struct sock_filter)
            || program->len / sizeof(struct sock_filter) > BPF_MAXINSNS) {
        PyBuffer_Release(program);
        PyErr_SetString(PyExc_ValueError, "not a BPF program");
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(seccomp_set_filter_doc,
"seccomp_set_filter(program, flags) -> None\n\n"
"Install the classic-BPF `program` (an array of struct sock_filter) on the calling\n"
"thread: seccomp(SECCOMP_SET_MODE_FILTER, flags) when flags are given, else\n"
"prctl(PR_SET_SECCOMP). The kernel copies the program. Raises OSError on failure.");

static PyObject *
kernel_seccomp_set_filter(PyObject *module, PyObject *args)
{
    Py_buffer program;
    unsigned long flags;
    struct sock_fprog fprog;
    long result;
    int saved_errno;

    if (!PyArg_ParseTuple(args, "y*k:seccomp_set_filter", &program, &flags))
        return NULL;
    if (!bpf_program_checked(&program))
        return NULL;
    fprog.len = (unsigned short)(program.len / sizeof(struct sock_filter));
    fprog.filter = (struct sock_filter *)program.buf;
    errno = 0;
    if (flags)
        result = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &fprog);
    else
        result = prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0);
    saved_errno = errno;
    PyBuffer_Release(&program);
    if (result != 0) {
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(seccomp_load_and_send_doc,
"seccomp_load_and_send(program, flags, socket_fd) -> None\n\n"
"Install `program` with SECCOMP_FILTER_FLAG_NEW_LISTENER added to `flags`, send the\n"
"listener fd over the unix socket `socket_fd` (SCM_RIGHTS), then close the listener\n"
"and the socket. Between the load and the return only sendmsg and close are called\n"
"(the filter of hardrun --explain lets exactly those through unnotified). Raises\n"
"OSError on failure; a filter loaded before a failed send stays loaded.");

static PyObject *
kernel_seccomp_load_and_send(PyObject *module, PyObject *args)
{
    Py_buffer program;
    unsigned long flags;
    int socket_fd, listener, saved_errno;
    struct sock_fprog fprog;
    char byte = 'L';
    struct iovec iov = {&byte, 1};
    union { struct cmsghdr header; char space[CMSG_SPACE(sizeof(int))]; } control;
    struct msghdr message;
    struct cmsghdr *cmsg;
    ssize_t sent;

    if (!PyArg_ParseTuple(args, "y*ki:seccomp_load_and_send", &program, &flags, &socket_fd))
        return NULL;
    if (!bpf_program_checked(&program))
        return NULL;
    /* Everything the send needs is ready before the load. */
    memset(&control, 0, sizeof(control));
    memset(&message, 0, sizeof(message));
    message.msg_iov = &iov;
    message.msg_iovlen = 1;
    message.msg_control = control.space;
    message.msg_controllen = sizeof(control.space);
    cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int));
    fprog.len = (unsigned short)(program.len / sizeof(struct sock_filter));
    fprog.filter = (struct sock_filter *)program.buf;
    errno = 0;
    listener = (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                            flags | SECCOMP_FILTER_FLAG_NEW_LISTENER, &fprog);
    saved_errno = errno;
    PyBuffer_Release(&program);
    if (listener < 0) {
        errno = saved_errno;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    memcpy(CMSG_DATA(cmsg), &listener, sizeof(int));
    do {
        sent = sendmsg(socket_fd, &message, MSG_NOSIGNAL);
    } while (sent < 0 && errno == EINTR);
    saved_errno = errno;
    close(listener);
    close(socket_fd);
    if (sent != 1) {
        errno = sent < 0 ? saved_errno : EIO;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(seccomp_action_available_doc,
"seccomp_action_available(action) -> bool\n\n"
"Whether the kernel knows the filter return `action` (SECCOMP_GET_ACTION_AVAIL).");

static PyObject *
kernel_seccomp_action_available(PyObject *module, PyObject *args)
{
    unsigned int action;

    if (!PyArg_ParseTuple(args, "I:seccomp_action_available", &action))
        return NULL;
    return PyBool_FromLong(syscall(SYS_seccomp, SECCOMP_GET_ACTION_AVAIL, 0, &action) == 0);
}

struct scmp_version_info {
    unsigned int major, minor, micro;
};

PyDoc_STRVAR(libseccomp_version_doc,
"libseccomp_version() -> str | None\n\n"
"The version of the system's libseccomp (\"2.5.4\"), or None when it is not installed.");

static PyObject *
kernel_libseccomp_version(PyObject *module, PyObject *unused)
{
    void *library = dlopen("libseccomp.so.2", RTLD_LAZY | RTLD_LOCAL);
    const struct scmp_version_info *(*version)(void);
    const struct scmp_version_info *info;

    if (library == NULL)
        Py_RETURN_NONE;
    version = (const struct scmp_version_info *(*)(void))dlsym(library, "seccomp_version");
    info = version ? version() : NULL;
    if (info == NULL)
        Py_RETURN_NONE;     /* the library stays loaded: libseccomp is used again to compile */
    return PyUnicode_FromFormat("%u.%u.%u", info->major, info->minor, info->micro);
}

static PyMethodDef kernel_methods[] = {
    {"syscall", (PyCFunction)(void (*)(void))kernel_syscall, METH_FASTCALL, syscall_doc},
    {"syscall_struct", kernel_syscall_struct, METH_VARARGS, syscall_struct_doc},
    {"seccomp_set_filter", kernel_seccomp_set_filter, METH_VARARGS, seccomp_set_filter_doc},
    {"seccomp_load_and_send", kernel_seccomp_load_and_send, METH_VARARGS,
     seccomp_load_and_send_doc},
    {"seccomp_action_available", kernel_seccomp_action_available, METH_VARARGS,
     seccomp_action_available_doc},
    {"libseccomp_version", kernel_libseccomp_version, METH_NOARGS, libseccomp_version_doc},
    {NULL, NULL, 0, NULL},
};

static int
add_numbers(PyObject *module)
{
    static const struct { const char *name; long number; } numbers[] = {
        {"bpf", SYS_bpf}, {"capget", SYS_capget}, {"capset", SYS_capset}, {"clone", SYS_clone},
        {"clone3", SYS_clone3}, {"close_range", SYS_close_range}, {"ioctl", SYS_ioctl},
        {"landlock_add_rule", SYS_landlock_add_rule},
        {"landlock_create_ruleset", SYS_landlock_create_ruleset},
        {"landlock_restrict_self", SYS_landlock_restrict_self},
        {"mount", SYS_mount}, {"mount_setattr", SYS_mount_setattr},
        {"move_mount", SYS_move_mount}, {"open_tree", SYS_open_tree}, {"openat2", SYS_openat2},
        {"pivot_root", SYS_pivot_root}, {"prctl", SYS_prctl}, {"setdomainname", SYS_setdomainname},
        {"sethostname", SYS_sethostname},
        {"setns", SYS_setns}, {"socket", SYS_socket}, {"umount2", SYS_umount2},
        {"unshare", SYS_unshare},
    };
    PyObject *table = PyDict_New();
    size_t i;

    if (table == NULL)
        return -1;
    for (i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        PyObject *value = PyLong_FromLong(numbers[i].number);
        if (value == NULL || PyDict_SetItemString(table, numbers[i].name, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(table);
            return -1;
        }
        Py_DECREF(value);
    }
    if (PyModule_AddObject(module, "NR", table) < 0) {
        Py_DECREF(table);
        return -1;
    }
    return 0;
}

static struct PyModuleDef kernel_module = {
    PyModuleDef_HEAD_INIT, "hardrun.runtime._kernel",
    "System calls for the hardrun runtime (see hardrun/runtime/syscalls.py).", -1, kernel_methods,
};

PyMODINIT_FUNC
PyInit__kernel(void)
{
    PyObject *module = PyModule_Create(&kernel_module);

    if (module != NULL && add_numbers(module) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
