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
    char old[BN_ERROR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
}

void bn_error_clear(bn_error *err) {
    if (!err) return;
    err->status = BITNET_OK;
    err->msg[0] = '\0';
}
