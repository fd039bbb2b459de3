/* Make one i386 system call through `int $0x80` from a 64-bit process and print its result
 * (a negative errno on failure). Usage: int80 NR [ARG...]; "socketcall-socket DOMAIN" passes
 * socketcall(SYS_SOCKET, {DOMAIN, SOCK_SEQPACKET, 0}) through memory below 4 GiB. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned int socket_args[3];

static long int80(long nr, long a, long b, long c, long d)
{
    long result;
    __asm__ volatile ("int $0x80" : "=a"(result) : "a"(nr), "b"(a), "c"(b), "d"(c), "S"(d) : "memory");
    return result;
}

int main(int argc, char **argv)
{
    long args[4] = {0, 0, 0, 0};
    long nr;
    if (argc >= 3 && strcmp(argv[1], "socketcall-socket") == 0) {
        socket_args[0] = (unsigned int)strtol(argv[2], NULL, 0);
        socket_args[1] = 5;
        socket_args[2] = 0;
        printf("%ld\n", int80(102, 1, (long)(unsigned long)socket_args, 0, 0));
        return 0;
    }
    if (argc < 2)
        return 2;
    nr = strtol(argv[1], NULL, 0);
    for (int i = 2; i < argc && i < 6; i++)
        args[i - 2] = strtol(argv[i], NULL, 0);
    printf("%ld\n", int80(nr, args[0], args[1], args[2], args[3]));
    return 0;
}
