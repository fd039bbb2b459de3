/* hardrun.images._tarscan: the tar header walk of hardrun/images/tarlist.py in C.
 *
 * `Scanner(error, number).scan(buffer, position, base, final)` walks the headers of
 * `buffer` (bytes) from `position` and returns `(entries, position, outcome)`:
 *
 *   entries   one tuple per entry: (name, type, mode, size, header, content, stored,
 *             fields): `header` and `content` are offsets in `buffer` (the content may
 *             run past its end), `stored` the bytes of content that follow the header
 *             (0 for entries without content), `fields` the dict of PAX and GNU long
 *             name fields that apply to the entry, or None;
 *   position  where the walk stopped: the next header, or the first header of an
 *             extended header or sparse map not whole in `buffer` (the caller joins the
 *             rest to the next bytes); past the end of `buffer` when the last entry's
 *             content runs on (the caller skips it); `position` in the call is within
 *             `buffer`;
 *   outcome   None: more bytes are needed; True: the end of the archive; or the exception
 *             to raise once the entries before it are listed (an `error`, tarlist's
 *             TarFormatError, with the Python reader's message).
 *
 * `base` is the stream offset of buffer[0] (errors name the byte); `final` says that
 * `buffer` holds the rest of the stream. Extended headers read before an entry and PAX
 * global headers are kept in the Scanner from one call to the next.
 *
 * The Python reader (tarlist.TarLister, the reference) and this one give the same entries
 * and errors; tests/images/test_tarlist.py holds them to it on generated, cut, damaged and
 * random archives. Number fields are read here when they are octal digits (spaces around
 * them, up to a NUL) or base-256 within 63 bits; any other spelling, which Python's int()
 * may still accept (a sign, an underscore, a 0o prefix), is read by `number`, the Python
 * reader's own function, so that both read it alike.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 512
#define MAX_EXTENDED_HEADER (1 << 20)

typedef struct {
    PyObject_HEAD
    PyObject *error;      /* the exception class of a malformed archive */
    PyObject *number;     /* tarlist._number: the number fields not read here */
    PyObject *overrides;  /* GNU long names and PAX records for the next entry: dict or NULL */
    PyObject *globals;    /* PAX global headers, for every later entry: dict or NULL */
    int pending;          /* an extended header awaits its entry */
} Scanner;

/* One walk over a buffer. */
typedef struct {
    const unsigned char *data;
    Py_ssize_t length;
    Py_ssize_t position;      /* of the header being read, at most length + 1 */
    unsigned long long beyond;  /* past the buffer: where the next header is, when not 0 */
    long long base;
    int final;
    PyObject *outcome;        /* the error to raise after the entries listed */
} Walk;

/* What reading one header came to. */
enum { STEP_DONE, STEP_NEED, STEP_END, STEP_ERROR, STEP_FAIL };

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static Py_ssize_t
until_nul(const unsigned char *field, Py_ssize_t size)
{
    const unsigned char *nul = memchr(field, 0, size);
    return nul ? nul - field : size;
}

/* A number field as tarlist._number reads it: 0 with *value set, or 1 for a spelling
 * left to Python's int(). */
static int
read_number(const unsigned char *field, Py_ssize_t size, long long *value)
{
    unsigned long long result = 0;
    Py_ssize_t start = 0, end, i;
    if (field[0] == 0x80) {             /* base-256 */
        for (i = 1; i < size; i++) {
            if (result >> 55)
                return 1;
            result = (result << 8) | field[i];
        }
        *value = (long long)result;
        return 0;
    }
    if (field[0] == 0xff)               /* negative base-256 */
        return 1;
    end = until_nul(field, size);
    while (start < end && is_space(field[start]))
        start++;
    while (end > start && is_space(field[end - 1]))
        end--;
    for (i = start; i < end; i++) {     /* at most 12 digits: no overflow */
        if (field[i] < '0' || field[i] > '7')
            return 1;
        result = result * 8 + (field[i] - '0');
    }
    *value = (long long)result;
    return 0;
}

/* callable(argument), taking the reference to `argument` (NULL: its exception stands). */
static PyObject *
call_taking(PyObject *callable, PyObject *argument)
{
    PyObject *result;
    if (argument == NULL)
        return NULL;
    result = PyObject_CallOneArg(callable, argument);
    Py_DECREF(argument);
    return result;
}

/* A number field as an int: read here, or by tarlist._number (NULL with its exception). */
static PyObject *
number_object(Scanner *self, const unsigned char *field, Py_ssize_t size)
{
    long long value;
    if (read_number(field, size, &value) == 0)
        return PyLong_FromLongLong(value);
    return call_taking(self->number, PyBytes_FromStringAndSize((const char *)field, size));
}

/* The checksum, mode or size field: 0 with *value set, 1 for a number that is not octal,
 * 2 for one past 63 bits, -1 for another exception. */
static int
header_number(Scanner *self, const unsigned char *field, Py_ssize_t size, long long *value)
{
    PyObject *number;
    int overflow;
    if (read_number(field, size, value) == 0)
        return 0;
    number = number_object(self, field, size);
    if (number == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return -1;
        PyErr_Clear();
        return 1;
    }
    *value = PyLong_AsLongLongAndOverflow(number, &overflow);
    Py_DECREF(number);
    if (*value == -1 && PyErr_Occurred())
        return -1;
    return overflow ? 2 : 0;
}

/* tarfile's test: the checksum equals the sum of the header's bytes, the field itself
 * counted as spaces (unsigned, or signed as some old tars computed it). The bytes are
 * summed eight at a time, in four 16-bit lanes (at most 64 * 510 each: no carry); the
 * signed sum is the unsigned one less 256 for each byte with its top bit set, counted
 * the same way. */
static int
checksum_matches(const unsigned char *block, long long stored)
{
    const uint64_t low = 0x00ff00ff00ff00ffULL, top = 0x8080808080808080ULL;
    uint64_t lanes = 0, tops = 0, word;
    long long unsigned_sum, signed_sum, negative;
    int i;
    for (i = 0; i < BLOCK; i += 8) {
        memcpy(&word, block + i, 8);
        lanes += (word & low) + ((word >> 8) & low);
        tops += (word & top) >> 7;      /* a 1 in each byte lane per top bit: at most 64 a lane */
    }
    tops = (tops & low) + ((tops >> 8) & low);
    negative = (long long)((tops & 0xffff) + ((tops >> 16) & 0xffff) + ((tops >> 32) & 0xffff) + (tops >> 48));
    unsigned_sum = (long long)((lanes & 0xffff) + ((lanes >> 16) & 0xffff) + ((lanes >> 32) & 0xffff) + (lanes >> 48));
    for (i = 148; i < 156; i++) {       /* the checksum field itself: eight spaces instead */
        unsigned_sum -= block[i];
        negative -= block[i] >> 7;
    }
    unsigned_sum += 256;
    signed_sum = unsigned_sum - 256 * negative;
    return stored == unsigned_sum || stored == signed_sum;
}

/* An instance of the archive error; NULL if even that fails. */
static PyObject *
format_error(Scanner *self, const char *format, ...)
{
    va_list arguments;
    PyObject *message;
    va_start(arguments, format);
    message = PyUnicode_FromFormatV(format, arguments);
    va_end(arguments);
    return call_taking(self->error, message);
}

/* The step ends with `error` (a new reference) to raise after the entries before it. */
static int
stop(Walk *walk, PyObject *error)
{
    if (error == NULL)
        return STEP_FAIL;
    walk->outcome = error;
    return STEP_ERROR;
}

/* The exception set by a Python call, taken to be raised after the entries before it. */
static int
stop_on_exception(Walk *walk)
{
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    PyErr_NormalizeException(&type, &value, &traceback);
    if (value == NULL) {
        PyErr_Restore(type, value, traceback);
        return STEP_FAIL;
    }
    if (traceback != NULL)
        PyException_SetTraceback(value, traceback);
    Py_XDECREF(type);
    Py_XDECREF(traceback);
    walk->outcome = value;
    return STEP_ERROR;
}

static PyObject *
text(const unsigned char *data, Py_ssize_t size)
{
    return PyUnicode_DecodeUTF8((const char *)data, until_nul(data, size), "surrogateescape");
}

/* The `LEN key=value\n` records of a PAX header as tarlist._pax_records reads them:
 * a dict, or NULL with *error set (the archive's error) or an exception. */
static PyObject *
pax_records(Scanner *self, const unsigned char *data, Py_ssize_t size, PyObject **error)
{
    PyObject *records = PyDict_New(), *key, *value;
    Py_ssize_t position = 0, space, length, end, equals, i;
    int status;
    if (records == NULL)
        return NULL;
    while (position < size && data[position] != 0) {
        space = -1;
        for (i = position; i < size && i < position + 21; i++) {
            if (data[i] == ' ') {
                space = i;
                break;
            }
        }
        length = 0;
        for (i = position; i < space; i++) {
            if (data[i] < '0' || data[i] > '9')
                break;
            if (length < ((Py_ssize_t)1 << 40))      /* longer than any header either way */
                length = length * 10 + (data[i] - '0');
        }
        if (space <= position || i < space) {
            *error = format_error(self, "a PAX record does not start with its length");
            goto failed;
        }
        end = position + length - 1;
        if (length < 5 || end >= size || data[end] != 0x0A) {
            *error = format_error(self, "a PAX record's length does not match its content");
            goto failed;
        }
        for (equals = space + 1; equals < end && data[equals] != '='; equals++)
            ;
        if (equals == space + 1 || equals == end) {
            *error = format_error(self, "a PAX record has no keyword=value");
            goto failed;
        }
        key = PyUnicode_DecodeUTF8((const char *)data + space + 1, equals - space - 1, "surrogateescape");
        value = key ? PyUnicode_DecodeUTF8((const char *)data + equals + 1, end - equals - 1,
                                           "surrogateescape") : NULL;
        status = value ? PyDict_SetItem(records, key, value) : -1;
        Py_XDECREF(key);
        Py_XDECREF(value);
        if (status < 0)
            goto failed;
        position += length;
    }
    return records;
failed:
    Py_DECREF(records);
    return NULL;
}

/* The field a PAX keyword sets (tarlist._PAX_FIELDS), or NULL. */
static const char *
pax_field(PyObject *key)
{
    static const char *const table[][2] = {
        {"path", "name"}, {"GNU.sparse.name", "name"}, {"linkpath", "linkname"}, {"size", "size"},
        {"GNU.sparse.size", "size"}, {"GNU.sparse.realsize", "size"}, {"uid", "uid"}, {"gid", "gid"},
        {"uname", "uname"}, {"gname", "gname"},
    };
    size_t i;
    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (PyUnicode_CompareWithASCIIString(key, table[i][0]) == 0)
            return table[i][1];
    }
    return NULL;
}

/* A PAX number: int(value); a size that is not one (or is negative, or past 63 bits) is
 * the archive's error, a uid or gid that is not one is 0 (as tarfile reads them). */
static PyObject *
pax_number(Scanner *self, PyObject *key, PyObject *value, int is_size, PyObject **error)
{
    PyObject *number = PyLong_FromUnicodeObject(value, 10);
    long long size;
    int overflow;
    if (number == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError))
            return NULL;
        PyErr_Clear();
        if (!is_size)
            return PyLong_FromLong(0);
        *error = format_error(self, "PAX %U %R is not a number", key, value);
        return NULL;
    }
    if (is_size) {
        size = PyLong_AsLongLongAndOverflow(number, &overflow);
        if (size == -1 && PyErr_Occurred()) {
            Py_DECREF(number);
            return NULL;
        }
        if (overflow || size < 0) {
            Py_DECREF(number);
            *error = format_error(self, "PAX %U %R is not a size in bytes", key, value);
            return NULL;
        }
    }
    return number;
}

/* The header fields PAX records set (tarlist._pax_fields): a dict, or NULL with *error
 * set or an exception. */
static PyObject *
pax_fields(Scanner *self, const unsigned char *data, Py_ssize_t size, PyObject **error)
{
    PyObject *records = pax_records(self, data, size, error), *fields = NULL, *key, *value, *converted;
    Py_ssize_t at = 0;
    const char *field;
    int status;
    if (records == NULL)
        return NULL;
    if ((fields = PyDict_New()) == NULL)
        goto failed;
    while (PyDict_Next(records, &at, &key, &value)) {
        if ((field = pax_field(key)) == NULL)
            continue;
        if (strcmp(field, "size") == 0 || strcmp(field, "uid") == 0 || strcmp(field, "gid") == 0)
            converted = pax_number(self, key, value, field[0] == 's', error);
        else if (PyUnicode_CompareWithASCIIString(key, "path") == 0)
            converted = PyObject_CallMethod(value, "rstrip", "s", "/");
        else
            converted = Py_NewRef(value);
        if (converted == NULL)
            goto failed;
        status = PyDict_SetItemString(fields, field, converted);
        Py_DECREF(converted);
        if (status < 0)
            goto failed;
    }
    Py_DECREF(records);
    return fields;
failed:
    Py_DECREF(records);
    Py_XDECREF(fields);
    return NULL;
}

/* The name or link of a GNU long name header, unless one came earlier for this entry. */
static int
set_long_text(PyObject *overrides, const char *field, const unsigned char *data, Py_ssize_t size, int is_name)
{
    PyObject *value;
    int status;
    if (PyDict_GetItemString(overrides, field) != NULL)
        return 0;
    if ((value = text(data, size)) == NULL)
        return -1;
    status = PyDict_SetItemString(overrides, field, value);
    Py_DECREF(value);
    if (status == 0 && is_name)
        status = PyDict_SetItemString(overrides, "long", Py_True);
    return status;
}

/* A GNU long name or link, or a PAX header: what it says about the entries after it
 * (tarlist.TarLister._meta; the first one before an entry wins). 0, or -1 with *error
 * set or an exception. */
static int
apply_meta(Scanner *self, unsigned char type, const unsigned char *data, Py_ssize_t size, PyObject **error)
{
    PyObject *fields, *key, *value;
    Py_ssize_t at = 0;
    int status = 0;
    if (self->overrides == NULL && (self->overrides = PyDict_New()) == NULL)
        return -1;
    if (type == 'L')
        return set_long_text(self->overrides, "name", data, size, 1);
    if (type == 'K')
        return set_long_text(self->overrides, "linkname", data, size, 0);
    if ((fields = pax_fields(self, data, size, error)) == NULL)
        return -1;
    if (type == 'g') {
        if (self->globals == NULL && (self->globals = PyDict_New()) == NULL)
            status = -1;
        else
            status = PyDict_Update(self->globals, fields);
    } else {
        while (status == 0 && PyDict_Next(fields, &at, &key, &value)) {
            if (PyDict_SetDefault(self->overrides, key, value) == NULL)
                status = -1;
        }
    }
    Py_DECREF(fields);
    return status;
}

/* An extended header at walk->position (its size checked): its data applied. */
static int
meta(Scanner *self, Walk *walk, unsigned char type, long long start, long long size)
{
    PyObject *error = NULL;
    Py_ssize_t padded;
    if (size > MAX_EXTENDED_HEADER)       /* read into memory: bounded, as Go's archive/tar does */
        return stop(walk, format_error(self, "the extended header at byte %lld is %lld bytes, more than the %d "
                                       "a name or PAX records need", start, size, MAX_EXTENDED_HEADER));
    padded = (Py_ssize_t)((size + BLOCK - 1) / BLOCK * BLOCK);
    if (walk->position + BLOCK + padded > walk->length) {
        if (!walk->final)
            return STEP_NEED;
        return stop(walk, format_error(self, "the archive ends inside the extended header at byte %lld", start));
    }
    if (apply_meta(self, type, walk->data + walk->position + BLOCK, (Py_ssize_t)size, &error) < 0)
        return error ? stop(walk, error) : STEP_FAIL;
    self->pending = 1;
    walk->position += BLOCK + padded;
    return STEP_DONE;
}

/* An old GNU sparse file's extension blocks: STEP_DONE with *blocks set, or another step. */
static int
sparse_map(Scanner *self, Walk *walk, const unsigned char *block, long long start, Py_ssize_t *blocks)
{
    Py_ssize_t at = walk->position + BLOCK, count = 0;
    int extended = block[482];
    while (extended) {
        if (count >= MAX_EXTENDED_HEADER / BLOCK)
            return stop(walk, format_error(self, "the sparse file's map at byte %lld is longer than %d bytes",
                                           start, MAX_EXTENDED_HEADER));
        if (at + BLOCK > walk->length) {
            if (!walk->final)
                return STEP_NEED;
            return stop(walk, format_error(self, "the archive ends inside a sparse file's map"));
        }
        extended = walk->data[at + 504];
        at += BLOCK;
        count++;
    }
    *blocks = count;
    return STEP_DONE;
}

static PyObject *
rstrip_slashes(PyObject *name)
{
    Py_ssize_t end = PyUnicode_GET_LENGTH(name);
    while (end > 0 && PyUnicode_READ_CHAR(name, end - 1) == '/')
        end--;
    return PyUnicode_Substring(name, 0, end);
}

/* A directory's name once its fields apply (tarlist: every trailing slash stripped, but
 * only a GNU long name's last, and none of a PAX path's, already stripped). */
static PyObject *
directory_name(PyObject *name, PyObject *overrides)
{
    PyObject *flag = overrides ? PyDict_GetItemString(overrides, "long") : NULL;
    Py_ssize_t length = PyUnicode_GET_LENGTH(name);
    int truth = flag ? PyObject_IsTrue(flag) : 0;
    if (truth < 0)
        return NULL;
    if (truth) {
        if (length > 0 && PyUnicode_READ_CHAR(name, length - 1) == '/')
            return PyUnicode_Substring(name, 0, length - 1);
        return Py_NewRef(name);
    }
    flag = overrides ? PyDict_GetItemString(overrides, "name") : NULL;
    truth = flag ? PyObject_IsTrue(flag) : 0;
    if (truth < 0)
        return NULL;
    return truth ? Py_NewRef(name) : rstrip_slashes(name);
}

/* The name in the header block: a directory's trailing slashes stripped, then the prefix
 * joined (POSIX ustar headers only, as Go's archive/tar reads them). */
static PyObject *
block_name(const unsigned char *block, int directory)
{
    char joined[155 + 1 + 100];
    Py_ssize_t name_length = until_nul(block, 100), prefix_length;
    if (directory) {
        while (name_length > 0 && block[name_length - 1] == '/')
            name_length--;
    }
    if (block[345] == 0 || memcmp(block + 257, "ustar\0", 6) != 0)
        return PyUnicode_DecodeUTF8((const char *)block, name_length, "surrogateescape");
    prefix_length = until_nul(block + 345, 155);
    memcpy(joined, block + 345, prefix_length);
    joined[prefix_length] = '/';
    memcpy(joined + prefix_length + 1, block, name_length);
    return PyUnicode_DecodeUTF8(joined, prefix_length + 1 + name_length, "surrogateescape");
}

/* Whether content follows the header: regular files, and types tarfile does not know
 * (it skips their size). */
static int
has_content(unsigned char type)
{
    return type == '0' || type == 0 || type == '7' || type == 'S' || strchr("123456LKxgX", type) == NULL;
}

/* The fields that apply to the entry: the globals overridden by its own, or NULL (none). */
static PyObject *
entry_fields(Scanner *self)
{
    PyObject *fields;
    int globals = self->globals != NULL && PyDict_GET_SIZE(self->globals) > 0;
    int overrides = self->overrides != NULL && PyDict_GET_SIZE(self->overrides) > 0;
    if (!globals && !overrides)
        return NULL;
    if (!globals)
        return Py_NewRef(self->overrides);
    fields = PyDict_Copy(self->globals);
    if (fields != NULL && overrides && PyDict_Update(fields, self->overrides) < 0)
        Py_CLEAR(fields);
    return fields;
}

/* (name, type, mode, size, header, content, stored, fields), taking the references to
 * name, size and fields (NULL: None); NULL with an exception. */
static PyObject *
entry_tuple(PyObject *name, unsigned char type, long long mode, PyObject *size, Py_ssize_t header,
            Py_ssize_t content, long long stored, PyObject *fields)
{
    PyObject *tuple = PyTuple_New(8);
    if (tuple == NULL) {
        Py_DECREF(name);
        Py_DECREF(size);
        Py_XDECREF(fields);
        return NULL;
    }
    PyTuple_SET_ITEM(tuple, 0, name);
    PyTuple_SET_ITEM(tuple, 1, PyBytes_FromStringAndSize((const char *)&type, 1));
    PyTuple_SET_ITEM(tuple, 2, PyLong_FromLongLong(mode));
    PyTuple_SET_ITEM(tuple, 3, size);
    PyTuple_SET_ITEM(tuple, 4, PyLong_FromSsize_t(header));
    PyTuple_SET_ITEM(tuple, 5, PyLong_FromSsize_t(content));
    PyTuple_SET_ITEM(tuple, 6, PyLong_FromLongLong(stored));
    PyTuple_SET_ITEM(tuple, 7, fields ? fields : Py_NewRef(Py_None));
    if (!PyTuple_GET_ITEM(tuple, 1) || !PyTuple_GET_ITEM(tuple, 2) || !PyTuple_GET_ITEM(tuple, 4)
            || !PyTuple_GET_ITEM(tuple, 5) || !PyTuple_GET_ITEM(tuple, 6))
        Py_CLEAR(tuple);
    return tuple;
}

/* The entry of the header at walk->position, appended to `entries`. */
static int
entry(Scanner *self, Walk *walk, PyObject *entries, const unsigned char *block, long long start,
      long long mode, long long size)
{
    unsigned char type = block[156];
    Py_ssize_t name_length = until_nul(block, 100), extension = 0, content;
    long long stored = size;
    unsigned long long next;
    PyObject *name = NULL, *size_object = NULL, *fields = NULL, *value, *item = NULL;
    int step, directory, status;
    if (type == 0 && name_length > 0 && block[name_length - 1] == '/')
        type = '5';                         /* an old V7 directory */
    directory = type == '5';
    if (type == 'S') {                      /* the real size is after the map, as tarlist reads it */
        step = sparse_map(self, walk, block, start, &extension);
        if (step != STEP_DONE)
            return step;
        if ((size_object = number_object(self, block + 483, 12)) == NULL)
            return stop_on_exception(walk);
    }
    if ((name = block_name(block, directory)) == NULL)
        goto failed;
    fields = entry_fields(self);
    if (fields == NULL && PyErr_Occurred())
        goto failed;
    if (fields != NULL) {
        if ((value = PyDict_GetItemString(fields, "name")) != NULL)
            Py_SETREF(name, Py_NewRef(value));
        if ((value = PyDict_GetItemString(fields, "size")) != NULL) {
            stored = PyLong_AsLongLong(value);
            if (stored == -1 && PyErr_Occurred())
                goto failed;
            Py_XSETREF(size_object, Py_NewRef(value));
        }
    }
    if (directory) {
        if ((value = directory_name(name, self->overrides)) == NULL)
            goto failed;
        Py_SETREF(name, value);
    }
    if (size_object == NULL && (size_object = PyLong_FromLongLong(size)) == NULL)
        goto failed;
    content = walk->position + BLOCK * (1 + extension);
    if (!has_content(type))
        stored = 0;
    item = entry_tuple(name, type, mode, size_object, walk->position, content, stored, fields);
    name = size_object = fields = NULL;     /* the tuple holds them, or they are gone */
    if (item == NULL)
        goto failed;
    status = PyList_Append(entries, item);
    Py_DECREF(item);
    if (status < 0)
        goto failed;
    Py_CLEAR(self->overrides);          /* the next entry's start empty (a listed one may hold it) */
    self->pending = 0;
    /* unsigned: a size just under 2^63 plus its padding does not fit a signed word */
    next = (unsigned long long)content + ((unsigned long long)stored + BLOCK - 1) / BLOCK * BLOCK;
    if (next > (unsigned long long)walk->length) {
        walk->beyond = next;
        walk->position = walk->length + 1;
    } else {
        walk->position = (Py_ssize_t)next;
    }
    return STEP_DONE;
failed:
    Py_XDECREF(name);
    Py_XDECREF(size_object);
    Py_XDECREF(fields);
    return STEP_FAIL;
}

/* Whether the bytes are all NUL. */
static int
all_zero(const unsigned char *data, Py_ssize_t size)
{
    Py_ssize_t i;
    for (i = 0; i < size; i++) {
        if (data[i])
            return 0;
    }
    return 1;
}

/* The end of the archive or of the bytes: a short or zeroed block at walk->position. */
static int
end_block(Scanner *self, Walk *walk, Py_ssize_t size, long long start)
{
    if (!all_zero(walk->data + walk->position, size))
        return stop(walk, format_error(self, "the archive ends inside the header at byte %lld", start));
    if (self->pending)
        return stop(walk, format_error(self, "the extended header before byte %lld describes no entry", start));
    return STEP_END;
}

static PyObject *
not_octal(Scanner *self, long long start)
{
    return format_error(self, "the header at byte %lld has a number field that is not octal", start);
}

/* One header at walk->position, and what follows it that must be read. */
static int
step(Scanner *self, Walk *walk, PyObject *entries)
{
    const unsigned char *block;
    long long start, checksum, mode, size;
    int checksum_status, mode_status, size_status;
    if (walk->position > walk->length)      /* in the content of the entry before: the caller's to skip */
        return STEP_NEED;
    block = walk->data + walk->position;
    start = walk->base + walk->position;
    if (walk->position + BLOCK > walk->length) {
        if (!walk->final)
            return STEP_NEED;
        return end_block(self, walk, walk->length - walk->position, start);
    }
    if (block[0] == 0 && all_zero(block, BLOCK))
        return end_block(self, walk, BLOCK, start);
    /* all three read before either error, in tarlist's order: not octal, then past 63 bits */
    if ((checksum_status = header_number(self, block + 148, 8, &checksum)) < 0 || checksum_status == 1)
        return checksum_status < 0 ? STEP_FAIL : stop(walk, not_octal(self, start));
    if ((mode_status = header_number(self, block + 100, 8, &mode)) < 0 || mode_status == 1)
        return mode_status < 0 ? STEP_FAIL : stop(walk, not_octal(self, start));
    if ((size_status = header_number(self, block + 124, 12, &size)) < 0 || size_status == 1)
        return size_status < 0 ? STEP_FAIL : stop(walk, not_octal(self, start));
    if (checksum_status || mode_status || size_status)
        return stop(walk, format_error(self, "the header at byte %lld has a number field past 63 bits", start));
    if (!checksum_matches(block, checksum))
        return stop(walk, format_error(self, "the header at byte %lld has a wrong checksum: not a tar header (a "
                                       "damaged or truncated archive?)", start));
    if (size < 0)
        return stop(walk, format_error(self, "the header at byte %lld gives a negative size", start));
    if (block[156] && strchr("xgXLK", block[156]))
        return meta(self, walk, block[156], start, size);
    return entry(self, walk, entries, block, start, mode, size);
}

static PyObject *
Scanner_scan(Scanner *self, PyObject *args)
{
    Py_buffer view;
    Walk walk = {0};
    PyObject *entries, *result;
    Py_ssize_t position;
    int final, status = STEP_DONE;
    if (self->error == NULL || self->number == NULL) {
        PyErr_SetString(PyExc_TypeError, "Scanner() needs its error class and number reader");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*nLp", &view, &position, &walk.base, &final))
        return NULL;
    if (position < 0 || position > view.len || walk.base < 0) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the position must be within the buffer, the base not negative");
        return NULL;
    }
    walk.data = view.buf;
    walk.length = view.len;
    walk.position = position;
    walk.final = final;
    entries = PyList_New(0);
    while (entries != NULL && status == STEP_DONE)
        status = step(self, &walk, entries);
    PyBuffer_Release(&view);
    if (entries == NULL || status == STEP_FAIL) {
        Py_XDECREF(entries);
        return NULL;
    }
    result = Py_BuildValue("(NKO)", entries, walk.beyond ? walk.beyond : (unsigned long long)walk.position,
                           status == STEP_END ? Py_True : walk.outcome ? walk.outcome : Py_None);
    Py_XDECREF(walk.outcome);
    return result;
}

static int
Scanner_init(Scanner *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"error", "number", NULL};
    PyObject *error, *number;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO", keywords, &error, &number))
        return -1;
    Py_XSETREF(self->error, Py_NewRef(error));
    Py_XSETREF(self->number, Py_NewRef(number));
    Py_CLEAR(self->overrides);
    Py_CLEAR(self->globals);
    self->pending = 0;
    return 0;
}

static int
Scanner_traverse(Scanner *self, visitproc visit, void *arg)
{
    Py_VISIT(self->error);
    Py_VISIT(self->number);
    Py_VISIT(self->overrides);
    Py_VISIT(self->globals);
    return 0;
}

static int
Scanner_clear(Scanner *self)
{
    Py_CLEAR(self->error);
    Py_CLEAR(self->number);
    Py_CLEAR(self->overrides);
    Py_CLEAR(self->globals);
    return 0;
}

static void
Scanner_dealloc(Scanner *self)
{
    PyObject_GC_UnTrack(self);
    Scanner_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef Scanner_methods[] = {
    {"scan", (PyCFunction)Scanner_scan, METH_VARARGS,
     "scan(buffer, position, base, final) -> (entries, position, outcome)"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hardrun.images._tarscan.Scanner",
    .tp_doc = "Scanner(error, number): a tar archive's headers, walked a buffer at a time",
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_methods = Scanner_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_tarscan", "The tar header walk of hardrun/images/tarlist.py, in C.", -1, NULL,
};

PyMODINIT_FUNC
PyInit__tarscan(void)
{
    PyObject *m;
    if (PyType_Ready(&ScannerType) < 0)
        return NULL;
    m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
