/* Shared by the files of the public API layer (bindings_c/src). */
#ifndef BN_API_INTERNAL_H
#define BN_API_INTERNAL_H

#include "bitnet.h"
#include "bn_error.h"

/* Record msg as this thread's bitnet_last_error(). */
void bn_api_set_last_error(const char *msg);

/* Record err's message as this thread's last error and return its status. */
bitnet_status bn_api_fail(const bn_error *err);

#endif
