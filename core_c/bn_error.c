#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L /* strnlen */
#endif
#if defined(__MINGW32__) && !defined(__USE_MINGW_ANSI_STDIO)
#define __USE_MINGW_ANSI_STDIO 1 /* vsnprintf with %zu (see BN_PRINTF) */
#endif
#include "bn_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

bitnet_status bn_fail(bn_error *err, bitnet_status status, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->status = status;
    }
    return status;
}

void bn_error_prefix(bn_error *err, const char *fmt, ...) {
    if (!err) return;
    char prefix[BN_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    /* new message = prefix + ": " + old message, cut to the buffer */
    size_t np = strlen(prefix), no = strnlen(err->msg, sizeof err->msg - 1), cap = sizeof err->msg - 1;
    if (np + 2 > cap) np = cap - 2;
    if (np + 2 + no > cap) no = cap - np - 2;
    memmove(err->msg + np + 2, err->msg, no);
    memcpy(err->msg, prefix, np);
    memcpy(err->msg + np, ": ", 2);
    err->msg[np + 2 + no] = '\0';
}

void bn_error_clear(bn_error *err) {
    if (!err) return;
    err->status = BITNET_OK;
    err->msg[0] = '\0';
}
