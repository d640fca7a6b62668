/* Status codes and error messages inside the core.
 *
 * Every fallible core function takes a `bn_error *` (may be NULL) and returns a
 * bitnet_status; bn_fail() formats the message and returns the status so a
 * failure is one line: `return bn_fail(err, BITNET_ERR_FORMAT, "tensor %s: ...", name);`
 * The core never aborts or exits the host process. */
#ifndef BN_ERROR_H
#define BN_ERROR_H

#include "bitnet.h"

#define BN_ERROR_MSG_MAX 512

typedef struct bn_error {
    bitnet_status status;
    char msg[BN_ERROR_MSG_MAX];
} bn_error;

#if defined(__MINGW32__)
/* MinGW: bn_error.c formats with MinGW's C99 printf (__USE_MINGW_ANSI_STDIO),
 * which knows %zu; "printf" would mean msvcrt's, which does not. */
#define BN_PRINTF(a, b) __attribute__((format(gnu_printf, a, b)))
#elif defined(__GNUC__) || defined(__clang__)
#define BN_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define BN_PRINTF(a, b)
#endif

/* Record status + message in err (if not NULL) and return status. */
bitnet_status bn_fail(bn_error *err, bitnet_status status, const char *fmt, ...) BN_PRINTF(3, 4);

/* Prefix an existing message: "loading X: <old message>". */
void bn_error_prefix(bn_error *err, const char *fmt, ...) BN_PRINTF(2, 3);

void bn_error_clear(bn_error *err);

#endif
