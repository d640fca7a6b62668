/* bitnet-cli: generate text with a BitNet b1.58 GGUF model from the command
 * line, streaming it to stdout. Written against the public API only
 * (bitnet.h), in portable C11: Linux, macOS, Windows (MinGW-w64 and MSVC).
 *
 *   bitnet-cli -m model.gguf -p "In the beginning" -n 64 --temp 0
 *
 * The flags follow llama-cli's names (-m, -p, -f, -n, -c, -t, --temp,
 * --top-k, --top-p, --min-p, --repeat-penalty, --frequency-penalty,
 * --presence-penalty, --seed). `bitnet-cli --help`
 * lists them; bitnet-cli.1 is the man page.
 *
 * Output: the generated text (control tokens hidden, as the Python package
 * does; bytes that form no UTF-8 character become U+FFFD, exactly as
 * Python's decode(errors="replace")) goes to stdout as it is generated, then
 * a newline. One statistics line goes to stderr. Exit status: 0 ok, 1 a
 * runtime error (bitnet-cli: error: ...), 2 a usage error.
 *
 * Model: -m, else $BITNET_DEFAULT_MODEL, else <dir of the executable>/../share/bitnet/
 * BITNET_DEFAULT_MODEL_FILE (so an install to any prefix, a Homebrew cellar,
 * a Windows zip with bin/ and share/, a snap finds its model), else the
 * compile-time BITNET_DEFAULT_MODEL_PATH when it is defined. */
#if defined(_WIN32)
#  ifndef _CRT_SECURE_NO_WARNINGS
#    define _CRT_SECURE_NO_WARNINGS /* fopen, getenv, strncpy under MSVC */
#  endif
#  ifndef WIN32_LEAN_AND_MEAN
#    define WIN32_LEAN_AND_MEAN
#  endif
#elif !defined(__APPLE__)
#  define _XOPEN_SOURCE 700 /* readlink, realpath, access, clock_gettime under -std=c11 */
#endif

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(_WIN32)
#  include <windows.h>
#  include <shellapi.h>
#  include <fcntl.h>
#  include <io.h>
#else
#  include <unistd.h>
#  if defined(__APPLE__)
#    include <mach-o/dyld.h>
#  endif
#endif

#include <bitnet.h>

#define PROG "bitnet-cli"

/* The default model's file name, looked for in <prefix>/share/bitnet/.
 * CMake passes the same name it installs. */
#ifndef BITNET_DEFAULT_MODEL_FILE
#  define BITNET_DEFAULT_MODEL_FILE "bitnet-english-i2_s.gguf"
#endif

#if defined(_WIN32)
#  define DIR_SEP '\\'
#  define DATA_SUBPATH "share\\bitnet\\"
#else
#  define DIR_SEP '/'
#  define DATA_SUBPATH "share/bitnet/"
#endif

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2

/* ---- messages ---------------------------------------------------------------- */

#if defined(__GNUC__) || defined(__clang__)
#  define PRINTF_LIKE(f, a) __attribute__((format(printf, f, a)))
#else
#  define PRINTF_LIKE(f, a)
#endif

static void error_msg(const char *fmt, ...) PRINTF_LIKE(1, 2);
static int usage_error(const char *fmt, ...) PRINTF_LIKE(1, 2);

static void verror_msg(const char *fmt, va_list ap) {
    fputs(PROG ": error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void error_msg(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_msg(fmt, ap);
    va_end(ap);
}

/* Usage errors: the message, a hint, exit status 2. */
static int usage_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    verror_msg(fmt, ap);
    va_end(ap);
    fputs("Try '" PROG " --help' for more information.\n", stderr);
    return EXIT_USAGE;
}

/* The library's message for a failed call, or the status name when it has none. */
static const char *lib_error(bitnet_status st, const char *msg) {
    return msg && msg[0] ? msg : bitnet_status_str(st);
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- platform: UTF-8 arguments, files, executable path, clock ------------------------- */

#if defined(_WIN32)
static char *wide_to_cp(const wchar_t *w, UINT cp, int *lossy) {
    BOOL used_default = FALSE;
    int check = cp != CP_UTF8;
    DWORD flags = check ? WC_NO_BEST_FIT_CHARS : 0;
    int n = WideCharToMultiByte(cp, flags, w, -1, NULL, 0, NULL, check ? &used_default : NULL);
    if (n <= 0) return NULL;
    char *s = malloc((size_t)n);
    if (!s) return NULL;
    if (WideCharToMultiByte(cp, flags, w, -1, s, n, NULL, check ? &used_default : NULL) <= 0) {
        free(s);
        return NULL;
    }
    if (lossy) *lossy = used_default ? 1 : 0;
    return s;
}

static wchar_t *utf8_to_wide(const char *s) {
    int n = MultiByteToWideChar(CP_UTF8, 0, s, -1, NULL, 0);
    if (n <= 0) return NULL;
    wchar_t *w = malloc(sizeof(wchar_t) * (size_t)n);
    if (!w) return NULL;
    if (MultiByteToWideChar(CP_UTF8, 0, s, -1, w, n) <= 0) {
        free(w);
        return NULL;
    }
    return w;
}
#endif

/* argv as UTF-8. On Windows the CRT's argv is in the ANSI code page, so the
 * wide command line is converted instead; elsewhere argv is used as it is.
 * Returns NULL only when out of memory. */
static char **utf8_argv(int argc, char **argv) {
#if defined(_WIN32)
    int wargc = 0;
    wchar_t **wargv = CommandLineToArgvW(GetCommandLineW(), &wargc);
    if (!wargv || wargc != argc) {
        if (wargv) LocalFree(wargv);
        return argv;
    }
    char **out = calloc((size_t)argc + 1, sizeof *out);
    if (!out) {
        LocalFree(wargv);
        return NULL;
    }
    for (int i = 0; i < argc; i++) {
        out[i] = wide_to_cp(wargv[i], CP_UTF8, NULL);
        if (!out[i]) out[i] = argv[i];
    }
    LocalFree(wargv);
    return out;
#else
    (void)argc;
    return argv;
#endif
}

/* getenv as UTF-8, malloc'd; NULL when unset or empty. */
static char *env_utf8(const char *name) {
#if defined(_WIN32)
    wchar_t wname[64];
    size_t i;
    for (i = 0; name[i] && i + 1 < sizeof wname / sizeof wname[0]; i++) wname[i] = (wchar_t)(unsigned char)name[i];
    wname[i] = 0;
    const wchar_t *v = _wgetenv(wname);
    return v && v[0] ? wide_to_cp(v, CP_UTF8, NULL) : NULL;
#else
    const char *v = getenv(name);
    return v && v[0] ? dup_str(v) : NULL;
#endif
}

static FILE *fopen_utf8(const char *path, const char *mode) {
#if defined(_WIN32)
    wchar_t *wp = utf8_to_wide(path), *wm = utf8_to_wide(mode);
    FILE *f = wp && wm ? _wfopen(wp, wm) : NULL;
    free(wp);
    free(wm);
    return f;
#else
    return fopen(path, mode);
#endif
}

static int file_exists(const char *path) {
    FILE *f = fopen_utf8(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* The path as libbitnet's loader takes it: on Windows the library opens files
 * with the ANSI functions, so the UTF-8 path goes to the ANSI code page.
 * NULL when the name cannot be written there (or out of memory). */
static char *path_for_library(const char *utf8) {
#if defined(_WIN32)
    if (GetACP() == CP_UTF8) return dup_str(utf8);
    wchar_t *w = utf8_to_wide(utf8);
    if (!w) return NULL;
    int lossy = 0;
    char *s = wide_to_cp(w, CP_ACP, &lossy);
    free(w);
    if (s && lossy) {
        free(s);
        return NULL;
    }
    return s;
#else
    return dup_str(utf8);
#endif
}

#if !defined(_WIN32) && !defined(__APPLE__)
/* argv[0] as a path: itself when it has a slash, else found on $PATH. */
static char *argv0_path(const char *argv0) {
    if (!argv0 || !argv0[0]) return NULL;
    if (strchr(argv0, '/')) return realpath(argv0, NULL);
    const char *path = getenv("PATH");
    if (!path) return NULL;
    size_t nlen = strlen(argv0);
    while (*path) {
        const char *end = strchr(path, ':');
        size_t dlen = end ? (size_t)(end - path) : strlen(path);
        char *cand = malloc(dlen + nlen + 3);
        if (!cand) return NULL;
        if (dlen == 0) {
            memcpy(cand, ".", 2);
            dlen = 1;
        } else {
            memcpy(cand, path, dlen);
        }
        cand[dlen] = '/';
        memcpy(cand + dlen + 1, argv0, nlen + 1);
        if (access(cand, X_OK) == 0) {
            char *real = realpath(cand, NULL);
            free(cand);
            return real;
        }
        free(cand);
        if (!end) break;
        path = end + 1;
    }
    return NULL;
}
#endif

/* The running executable's absolute path (malloc'd UTF-8), or NULL. */
static char *exe_path(const char *argv0) {
#if defined(_WIN32)
    (void)argv0;
    DWORD cap = 1024;
    for (;;) {
        wchar_t *buf = malloc(sizeof(wchar_t) * cap);
        if (!buf) return NULL;
        DWORD n = GetModuleFileNameW(NULL, buf, cap);
        if (n == 0) {
            free(buf);
            return NULL;
        }
        if (n < cap) {
            char *s = wide_to_cp(buf, CP_UTF8, NULL);
            free(buf);
            return s;
        }
        free(buf);
        if (cap >= 32768) return NULL;
        cap *= 2;
    }
#elif defined(__APPLE__)
    uint32_t size = 0;
    _NSGetExecutablePath(NULL, &size);
    char *raw = malloc((size_t)size + 1);
    if (!raw) return NULL;
    if (_NSGetExecutablePath(raw, &size) != 0) {
        free(raw);
        return NULL;
    }
    char *real = realpath(raw, NULL); /* a Homebrew bin/ symlink -> the Cellar */
    if (real) {
        free(raw);
        return real;
    }
    (void)argv0;
    return raw;
#else
#  if defined(__linux__)
    for (size_t cap = 256; cap <= 65536; cap *= 2) {
        char *buf = malloc(cap);
        if (!buf) return NULL;
        ssize_t n = readlink("/proc/self/exe", buf, cap);
        if (n < 0) {
            free(buf);
            break;
        }
        if ((size_t)n < cap) {
            buf[n] = '\0';
            return buf;
        }
        free(buf);
    }
#  endif
    return argv0_path(argv0);
#endif
}

/* <dir of the executable>/../share/bitnet/<file>, or NULL. */
static char *installed_model_path(const char *argv0) {
    char *exe = exe_path(argv0);
    if (!exe) return NULL;
    /* strip the file name, then bin/ */
    for (int level = 0; level < 2; level++) {
        char *cut = strrchr(exe, DIR_SEP);
#if defined(_WIN32)
        char *alt = strrchr(exe, '/');
        if (alt && (!cut || alt > cut)) cut = alt;
#endif
        if (!cut) {
            free(exe);
            return NULL;
        }
        cut[cut == exe ? 1 : 0] = '\0'; /* keep "/" as the root */
    }
    size_t n = strlen(exe);
    int need_sep = n > 0 && exe[n - 1] != DIR_SEP && exe[n - 1] != '/';
    size_t total = n + 1 + sizeof DATA_SUBPATH + sizeof BITNET_DEFAULT_MODEL_FILE;
    char *out = malloc(total);
    if (out) {
        snprintf(out, total, "%s%s%s%s", exe, need_sep ? (DIR_SEP == '/' ? "/" : "\\") : "", DATA_SUBPATH,
                 BITNET_DEFAULT_MODEL_FILE);
    }
    free(exe);
    return out;
}

static double now_seconds(void) {
#if defined(_WIN32)
    LARGE_INTEGER f, c;
    QueryPerformanceFrequency(&f);
    QueryPerformanceCounter(&c);
    return (double)c.QuadPart / (double)f.QuadPart;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
}

/* A seed that differs from run to run (not cryptographic). */
static uint64_t random_seed(void) {
    uint64_t x = (uint64_t)time(NULL);
    int local = 0;
    x ^= (uint64_t)(uintptr_t)&local * 0x9E3779B97F4A7C15ull; /* ASLR */
    x ^= (uint64_t)(now_seconds() * 1e9);
    x ^= (uint64_t)clock() << 32;
    x ^= x >> 31;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 29;
    return x;
}

/* Read a whole file ("-": stdin) into a malloc'd buffer. */
static char *read_file(const char *path, size_t *len_out) {
    FILE *f;
    int is_stdin = strcmp(path, "-") == 0;
    if (is_stdin) {
#if defined(_WIN32)
        _setmode(_fileno(stdin), _O_BINARY);
#endif
        f = stdin;
    } else {
        f = fopen_utf8(path, "rb");
        if (!f) return NULL;
    }
    size_t cap = 4096, len = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (len + 1 < cap) {
            if (ferror(f)) {
                free(buf);
                buf = NULL;
            }
            break;
        }
        char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!bigger) {
            free(buf);
            buf = NULL;
            errno = ENOMEM;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (!is_stdin) fclose(f);
    if (buf) {
        buf[len] = '\0';
        *len_out = len;
    }
    return buf;
}

/* ---- UTF-8 output: as Python's incremental decoder with errors="replace" ------------- */

/* Bytes in, valid UTF-8 out: a character split over tokens waits for its last
 * byte; each maximal invalid subpart becomes one U+FFFD (the Unicode
 * recommendation, which CPython follows), so the text is byte for byte what
 * the Python package gives. */
typedef struct {
    unsigned char held[4];
    int n_held, need; /* bytes held; continuation bytes the lead byte asks for */
} utf8_stream;

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

static void utf8_put(utf8_stream *u, const unsigned char *s, size_t n, FILE *out) {
    for (size_t i = 0; i < n;) {
        unsigned char b = s[i];
        if (u->n_held == 0) {
            i++;
            if (b < 0x80) {
                fputc(b, out);
            } else if (b >= 0xC2 && b <= 0xF4) {
                u->held[0] = b;
                u->n_held = 1;
                u->need = b < 0xE0 ? 1 : b < 0xF0 ? 2 : 3;
            } else {
                fputs(REPLACEMENT, out);
            }
            continue;
        }
        unsigned char lo = 0x80, hi = 0xBF;
        if (u->n_held == 1) {
            switch (u->held[0]) {
            case 0xE0: lo = 0xA0; break;
            case 0xED: hi = 0x9F; break;
            case 0xF0: lo = 0x90; break;
            case 0xF4: hi = 0x8F; break;
            default: break;
            }
        }
        if (b < lo || b > hi) { /* the held bytes are a maximal subpart: one U+FFFD, then b afresh */
            fputs(REPLACEMENT, out);
            u->n_held = 0;
            continue;
        }
        i++;
        u->held[u->n_held++] = b;
        if (u->n_held == u->need + 1) {
            fwrite(u->held, 1, (size_t)u->n_held, out);
            u->n_held = 0;
        }
    }
}

/* End of text: an unfinished character becomes one U+FFFD. */
static void utf8_finish(utf8_stream *u, FILE *out) {
    if (u->n_held) fputs(REPLACEMENT, out);
    u->n_held = 0;
}

/* ---- options ------------------------------------------------------------------------- */

typedef enum { MODE_GENERATE, MODE_TOKENIZE, MODE_INFO, MODE_SYSTEM_INFO } run_mode;

typedef struct {
    run_mode mode;
    const char *model;  /* -m */
    const char *prompt; /* -p */
    const char *file;   /* -f */
    int32_t n_predict;
    int32_t n_ctx, n_threads;
    const char *kernel;
    bitnet_sampler_params sp;
    int seed_given;
    int ignore_eos, echo;
} options;

enum {
    OPT_HELP, OPT_VERSION, OPT_MODEL, OPT_PROMPT, OPT_FILE, OPT_N_PREDICT, OPT_CTX, OPT_THREADS, OPT_KERNEL,
    OPT_TEMP, OPT_TOP_K, OPT_TOP_P, OPT_MIN_P, OPT_REPEAT_PENALTY, OPT_REPEAT_LAST_N,
    OPT_FREQUENCY_PENALTY, OPT_PRESENCE_PENALTY, OPT_SEED, OPT_IGNORE_EOS,
    OPT_ECHO, OPT_TOKENIZE, OPT_INFO, OPT_SYSTEM_INFO
};

typedef struct {
    const char *short_name, *long_name, *alias;
    int id, takes_value;
} option_spec;

static const option_spec OPTIONS[] = {
    {"-h", "--help", NULL, OPT_HELP, 0},
    {NULL, "--version", NULL, OPT_VERSION, 0},
    {"-m", "--model", NULL, OPT_MODEL, 1},
    {"-p", "--prompt", NULL, OPT_PROMPT, 1},
    {"-f", "--file", NULL, OPT_FILE, 1},
    {"-n", "--n-predict", "--max-tokens", OPT_N_PREDICT, 1},
    {"-c", "--ctx-size", NULL, OPT_CTX, 1},
    {"-t", "--threads", NULL, OPT_THREADS, 1},
    {NULL, "--kernel", NULL, OPT_KERNEL, 1},
    {NULL, "--temp", "--temperature", OPT_TEMP, 1},
    {NULL, "--top-k", NULL, OPT_TOP_K, 1},
    {NULL, "--top-p", NULL, OPT_TOP_P, 1},
    {NULL, "--min-p", NULL, OPT_MIN_P, 1},
    {NULL, "--repeat-penalty", NULL, OPT_REPEAT_PENALTY, 1},
    {NULL, "--repeat-last-n", NULL, OPT_REPEAT_LAST_N, 1},
    {NULL, "--frequency-penalty", NULL, OPT_FREQUENCY_PENALTY, 1},
    {NULL, "--presence-penalty", NULL, OPT_PRESENCE_PENALTY, 1},
    {"-s", "--seed", NULL, OPT_SEED, 1},
    {NULL, "--ignore-eos", NULL, OPT_IGNORE_EOS, 0},
    {NULL, "--echo", NULL, OPT_ECHO, 0},
    {NULL, "--tokenize", NULL, OPT_TOKENIZE, 0},
    {NULL, "--info", NULL, OPT_INFO, 0},
    {NULL, "--system-info", NULL, OPT_SYSTEM_INFO, 0},
};

static void print_usage(FILE *out) {
    fputs(
        "usage: " PROG " [-m MODEL.gguf] [-p PROMPT | -f FILE] [-n N] [options]\n"
        "\n"
        "Generate text with a BitNet b1.58 model (GGUF), streamed to stdout.\n"
        "\n"
        "  -m, --model FILE        GGUF model (default: $BITNET_DEFAULT_MODEL, else the installed\n"
        "                          default model <bindir>/../share/bitnet/" BITNET_DEFAULT_MODEL_FILE ")\n"
        "  -p, --prompt TEXT       text to continue (default: empty, i.e. start from BOS)\n"
        "  -f, --file FILE         read the prompt from FILE ('-': standard input)\n"
        "  -n, --n-predict N       most tokens to generate (default: 64)\n"
        "  -c, --ctx-size N        context size in tokens (default 0: the model's, at most 4096)\n"
        "  -t, --threads N         threads (default 0: every core)\n"
        "      --kernel NAME       auto, scalar, avx2, avx512, neon or wasm_simd\n"
        "                          (default: $BITNET_KERNEL, else the best this CPU runs)\n"
        "\n"
        "sampling:\n"
        "      --temp T            temperature; 0 = greedy (default: 0.8)\n"
        "      --top-k K           top-k filter, <= 0 = off (default: 40)\n"
        "      --top-p P           top-p filter, >= 1 = off (default: 0.95)\n"
        "      --min-p P           min-p filter, <= 0 = off (default: 0.05)\n"
        "      --repeat-penalty R  repetition penalty, 1 = off (default: 1.0)\n"
        "      --repeat-last-n N   tokens the penalties look back on (default: 64)\n"
        "      --frequency-penalty F\n"
        "                          OpenAI's: a token seen k times loses k*F (default: 0 = off)\n"
        "      --presence-penalty P\n"
        "                          OpenAI's: a token seen at all loses P (default: 0 = off)\n"
        "  -s, --seed S            random seed, 0 to 2^64-1 (default: a random one)\n"
        "      --ignore-eos        go on past end-of-text tokens\n"
        "\n"
        "output and other modes:\n"
        "      --echo              print the prompt before the generated text\n"
        "      --tokenize          print the prompt's token ids (BOS included) and exit\n"
        "      --info              print the version, system and model summary and exit\n"
        "      --system-info       print the kernel variants and CPU features and exit\n"
        "  -h, --help              print this help and exit\n"
        "      --version           print the version and exit\n"
        "\n"
        "The new text goes to stdout as it is generated (the prompt only with --echo),\n"
        "then a newline; a statistics line goes to stderr. Exit status: 0 success,\n"
        "1 error (bad model file, prompt longer than the context, ...), 2 usage error.\n",
        out);
}

/* Decimal integer in [lo, hi]. */
static int parse_int(const char *s, long long lo, long long hi, long long *out) {
    if (!s[0]) return 0;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || end == s || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
    if (!s[0] || s[0] == '-' || s[0] == '+' || s[0] == ' ') return 0;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) return 0;
    *out = (uint64_t)v;
    return 1;
}

static int parse_float(const char *s, float *out) {
    if (!s[0]) return 0;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end || end == s || !isfinite(v) || fabs(v) > 1e30) return 0;
    *out = (float)v;
    return 1;
}

static int bad_value(const char *option, const char *value, const char *expected) {
    return usage_error("%s: expected %s, got '%s'", option, expected, value);
}

/* 0: go on; -1: exit 0 (help/version printed); else an exit status. */
static int parse_args(int argc, char **argv, options *o) {
    memset(o, 0, sizeof *o);
    o->mode = MODE_GENERATE;
    o->n_predict = 64;
    bitnet_sampler_params_init(&o->sp);
    o->sp.temperature = 0.8f; /* llama-cli's defaults; the library's too */

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *inline_value = NULL;
        size_t name_len = strlen(arg);
        if (arg[0] == '-' && arg[1] == '-') {
            const char *eq = strchr(arg, '=');
            if (eq) {
                name_len = (size_t)(eq - arg);
                inline_value = eq + 1;
            }
        }
        const option_spec *spec = NULL;
        for (size_t k = 0; k < sizeof OPTIONS / sizeof OPTIONS[0] && !spec; k++) {
            const char *names[3] = {OPTIONS[k].short_name, OPTIONS[k].long_name, OPTIONS[k].alias};
            for (int j = 0; j < 3; j++) {
                if (names[j] && strlen(names[j]) == name_len && strncmp(names[j], arg, name_len) == 0) {
                    spec = &OPTIONS[k];
                    break;
                }
            }
        }
        if (!spec) {
            if (arg[0] == '-' && arg[1] != '\0') return usage_error("unknown option '%s'", arg);
            return usage_error("unexpected argument '%s' (give the prompt with -p)", arg);
        }
        const char *value = NULL;
        if (spec->takes_value) {
            if (inline_value) {
                value = inline_value;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                return usage_error("option '%s' needs a value", arg);
            }
        } else if (inline_value) {
            return usage_error("option '%.*s' takes no value", (int)name_len, arg);
        }
        char name[48]; /* the option as given, for messages */
        snprintf(name, sizeof name, "%.*s", (int)(name_len < 40 ? name_len : 40), arg);
        long long v = 0;
        switch (spec->id) {
        case OPT_HELP:
            print_usage(stdout);
            return -1;
        case OPT_VERSION:
            printf(PROG " %s\n", bitnet_version());
            return -1;
        case OPT_MODEL: o->model = value; break;
        case OPT_PROMPT: o->prompt = value; break;
        case OPT_FILE: o->file = value; break;
        case OPT_KERNEL: o->kernel = value; break;
        case OPT_N_PREDICT:
            if (!parse_int(value, 0, INT32_MAX, &v)) return bad_value(name, value, "an integer >= 0");
            o->n_predict = (int32_t)v;
            break;
        case OPT_CTX:
            if (!parse_int(value, 0, INT32_MAX, &v)) return bad_value(name, value, "an integer >= 0");
            o->n_ctx = (int32_t)v;
            break;
        case OPT_THREADS:
            if (!parse_int(value, 0, 4096, &v)) return bad_value(name, value, "an integer from 0 to 4096");
            o->n_threads = (int32_t)v;
            break;
        case OPT_TOP_K:
            if (!parse_int(value, INT32_MIN, INT32_MAX, &v)) return bad_value(name, value, "an integer");
            o->sp.top_k = (int32_t)v;
            break;
        case OPT_REPEAT_LAST_N:
            if (!parse_int(value, 0, 1 << 20, &v)) return bad_value(name, value, "an integer from 0 to 1048576");
            o->sp.repeat_last_n = (int32_t)v;
            break;
        case OPT_TEMP:
            if (!parse_float(value, &o->sp.temperature)) return bad_value(name, value, "a number");
            break;
        case OPT_TOP_P:
            if (!parse_float(value, &o->sp.top_p)) return bad_value(name, value, "a number");
            break;
        case OPT_MIN_P:
            if (!parse_float(value, &o->sp.min_p)) return bad_value(name, value, "a number");
            break;
        case OPT_REPEAT_PENALTY:
            if (!parse_float(value, &o->sp.repeat_penalty) || !(o->sp.repeat_penalty > 0.0f))
                return bad_value(name, value, "a number > 0");
            break;
        case OPT_FREQUENCY_PENALTY:
            if (!parse_float(value, &o->sp.frequency_penalty))
                return bad_value(name, value, "a number");
            break;
        case OPT_PRESENCE_PENALTY:
            if (!parse_float(value, &o->sp.presence_penalty))
                return bad_value(name, value, "a number");
            break;
        case OPT_SEED:
            if (!parse_u64(value, &o->sp.seed)) return bad_value(name, value, "an integer from 0 to 2^64-1");
            o->seed_given = 1;
            break;
        case OPT_IGNORE_EOS: o->ignore_eos = 1; break;
        case OPT_ECHO: o->echo = 1; break;
        case OPT_TOKENIZE: o->mode = MODE_TOKENIZE; break;
        case OPT_INFO: o->mode = MODE_INFO; break;
        case OPT_SYSTEM_INFO: o->mode = MODE_SYSTEM_INFO; break;
        default: break;
        }
    }
    if (o->prompt && o->file) return usage_error("give the prompt with -p or -f, not both");
    if (!o->seed_given) o->sp.seed = random_seed();
    return 0;
}

/* ---- the model ------------------------------------------------------------------------ */

/* The model file to load (malloc'd UTF-8), or NULL after an error message. */
static char *resolve_model(const options *o, const char *argv0) {
    if (o->model) {
        char *path = dup_str(o->model);
        if (!path) error_msg("out of memory");
        return path;
    }
    char *env = env_utf8("BITNET_DEFAULT_MODEL");
    if (env) return env; /* named explicitly: a missing file is reported by the loader */
    char *installed = installed_model_path(argv0);
    if (installed && file_exists(installed)) return installed;
#ifdef BITNET_DEFAULT_MODEL_PATH
    if (file_exists(BITNET_DEFAULT_MODEL_PATH)) {
        free(installed);
        char *path = dup_str(BITNET_DEFAULT_MODEL_PATH);
        if (!path) error_msg("out of memory");
        return path;
    }
#endif
    error_msg("no model given and no default model found (looked for %s%s%s); "
              "pass -m MODEL.gguf or set BITNET_DEFAULT_MODEL",
              installed ? installed : "<bindir>/../share/bitnet/" BITNET_DEFAULT_MODEL_FILE,
#ifdef BITNET_DEFAULT_MODEL_PATH
              " and ", BITNET_DEFAULT_MODEL_PATH
#else
              "", ""
#endif
    );
    free(installed);
    return NULL;
}

static bitnet_model *load_model(const char *path, const options *o) {
    char *lib_path = path_for_library(path);
    if (!lib_path) {
        error_msg("%s: the file name cannot be passed to the library (characters outside the ANSI code page?)", path);
        return NULL;
    }
    bitnet_model_params mp;
    bitnet_model_params_init(&mp);
    mp.kernel = o->kernel;
    bitnet_model *model = NULL;
    bitnet_status st = bitnet_model_load(lib_path, &mp, &model);
    free(lib_path);
    if (st != BITNET_OK) {
        const char *msg = lib_error(st, bitnet_last_error());
        /* The library's message names the file; make sure the user sees which one. */
        if (strstr(msg, path)) error_msg("%s", msg);
        else error_msg("%s: %s", path, msg);
        return NULL;
    }
    return model;
}

/* The prompt text (malloc'd) from -p / -f / nothing. */
static char *prompt_text(const options *o, size_t *len) {
    if (o->file) {
        char *text = read_file(o->file, len);
        if (!text)
            error_msg("%s: cannot read the prompt file: %s", strcmp(o->file, "-") ? o->file : "standard input",
                      strerror(errno));
        return text;
    }
    const char *p = o->prompt ? o->prompt : "";
    *len = strlen(p);
    char *text = dup_str(p);
    if (!text) error_msg("out of memory");
    return text;
}

/* Prompt ids, BOS first when the GGUF asks for it (as the Python package and
 * llama.cpp). NULL after an error message. */
static int32_t *tokenize_prompt(const bitnet_tokenizer *tok, const char *text, size_t len, int32_t *n_out) {
    int add_bos = bitnet_tokenizer_add_bos(tok);
    int32_t cap = len < 1000000 ? (int32_t)len + 2 : 1000002, n = 0;
    int32_t *ids = malloc(sizeof *ids * (size_t)cap);
    if (!ids) {
        error_msg("out of memory");
        return NULL;
    }
    bitnet_status st = bitnet_tokenize(tok, text, len, add_bos, 0, ids, cap, &n);
    if (st == BITNET_ERR_BUFFER_TOO_SMALL && n > cap) {
        free(ids);
        cap = n;
        ids = malloc(sizeof *ids * (size_t)cap);
        if (!ids) {
            error_msg("out of memory");
            return NULL;
        }
        st = bitnet_tokenize(tok, text, len, add_bos, 0, ids, cap, &n);
    }
    if (st != BITNET_OK) {
        error_msg("the prompt: %s", lib_error(st, bitnet_tokenizer_last_error(tok)));
        free(ids);
        return NULL;
    }
    *n_out = n;
    return ids;
}

/* ---- generation ------------------------------------------------------------------------- */

typedef struct {
    const bitnet_tokenizer *tok;
    int32_t eos, eot;
    int ignore_eos;
    utf8_stream utf8;
    char *piece;
    size_t piece_cap;
    int32_t n_tokens;
    double t_first, t_last;
    int ended, wrote;
    bitnet_status piece_error;
    char piece_msg[256];
} generation;

static int on_token(void *user_data, int32_t token) {
    generation *g = user_data;
    double now = now_seconds();
    if (g->n_tokens == 0) g->t_first = now;
    g->t_last = now;
    g->n_tokens++;
    if (!g->ignore_eos && (token == g->eos || token == g->eot)) {
        g->ended = 1; /* adds no text; the loop stops after it */
        return 0;
    }
    /* Control tokens (BOS, EOS, <|eot_id|>, ...) add no text, as in llama.cpp
     * and the Python package. */
    if (bitnet_token_type_of(g->tok, token) == BITNET_TOKEN_CONTROL) return 0;
    size_t needed = 0;
    bitnet_status st = bitnet_token_to_piece(g->tok, token, g->piece, g->piece_cap, &needed);
    if (st == BITNET_ERR_BUFFER_TOO_SMALL && needed > g->piece_cap) {
        char *bigger = realloc(g->piece, needed);
        if (!bigger) {
            g->piece_error = BITNET_ERR_OUT_OF_MEMORY;
            snprintf(g->piece_msg, sizeof g->piece_msg, "out of memory");
            return 1;
        }
        g->piece = bigger;
        g->piece_cap = needed;
        st = bitnet_token_to_piece(g->tok, token, g->piece, g->piece_cap, &needed);
    }
    if (st != BITNET_OK) {
        g->piece_error = st;
        snprintf(g->piece_msg, sizeof g->piece_msg, "token %ld: %s", (long)token,
                 lib_error(st, bitnet_tokenizer_last_error(g->tok)));
        return 1;
    }
    if (needed) {
        utf8_put(&g->utf8, (const unsigned char *)g->piece, needed, stdout);
        g->wrote = 1;
        fflush(stdout);
        if (ferror(stdout)) return 1; /* e.g. a closed pipe: stop, reported below */
    }
    return 0;
}

static int run_generate(const options *o, bitnet_model *model, const bitnet_tokenizer *tok, const int32_t *ids,
                        int32_t n_ids, const char *text, size_t text_len) {
    bitnet_context_params cp;
    bitnet_context_params_init(&cp);
    cp.n_ctx = o->n_ctx;
    cp.n_threads = o->n_threads;
    bitnet_context *ctx = NULL;
    bitnet_status st = bitnet_context_create(model, &cp, &ctx);
    if (st != BITNET_OK) {
        error_msg("cannot create the context: %s", lib_error(st, bitnet_last_error()));
        return EXIT_RUNTIME;
    }
    bitnet_sampler *sampler = NULL;
    st = bitnet_sampler_create(&o->sp, &sampler);
    if (st != BITNET_OK) {
        error_msg("%s", lib_error(st, bitnet_last_error()));
        bitnet_context_free(ctx);
        return EXIT_RUNTIME;
    }
    if (n_ids == 0) {
        error_msg("the prompt is empty: it tokenizes to no tokens and the model adds no BOS (give -p or -f)");
        bitnet_sampler_free(sampler);
        bitnet_context_free(ctx);
        return EXIT_RUNTIME;
    }
    if (n_ids > bitnet_context_n_ctx(ctx)) {
        error_msg("the prompt has %ld tokens, more than the context holds (%ld); use a shorter prompt or a larger -c",
                  (long)n_ids, (long)bitnet_context_n_ctx(ctx));
        bitnet_sampler_free(sampler);
        bitnet_context_free(ctx);
        return EXIT_RUNTIME;
    }

    generation g;
    memset(&g, 0, sizeof g);
    g.tok = tok;
    g.eos = bitnet_model_token_eos(model);
    g.eot = bitnet_model_token_eot(model);
    g.ignore_eos = o->ignore_eos;
    g.piece_cap = 256;
    g.piece = malloc(g.piece_cap);
    if (!g.piece) {
        error_msg("out of memory");
        bitnet_sampler_free(sampler);
        bitnet_context_free(ctx);
        return EXIT_RUNTIME;
    }
    if (o->echo && text_len) {
        fwrite(text, 1, text_len, stdout);
        fflush(stdout);
        g.wrote = 1;
    }
    double t_start = now_seconds();
    st = bitnet_generate_tokens_cb(ctx, sampler, ids, n_ids, o->n_predict,
                                   o->ignore_eos ? BITNET_GENERATE_IGNORE_EOS : 0, on_token, &g);
    char gen_msg[512];
    snprintf(gen_msg, sizeof gen_msg, "%s", lib_error(st, bitnet_last_error()));
    bitnet_sampler_free(sampler);
    bitnet_context_free(ctx);
    free(g.piece);

    utf8_finish(&g.utf8, stdout);
    if (g.wrote || st == BITNET_OK) fputc('\n', stdout);
    fflush(stdout);
    if (ferror(stdout)) {
        error_msg("cannot write the output");
        return EXIT_RUNTIME;
    }
    if (st != BITNET_OK) {
        error_msg("generation failed: %s", gen_msg);
        return EXIT_RUNTIME;
    }
    if (g.piece_error != BITNET_OK) {
        error_msg("%s", g.piece_msg);
        return EXIT_RUNTIME;
    }
    double prompt_s = g.n_tokens ? g.t_first - t_start : 0.0;
    double gen_s = g.t_last - g.t_first;
    /* The loop stops at an end token, at n_predict tokens or when the context is full. */
    const char *finish = g.ended ? "stop" : g.n_tokens < o->n_predict ? "context full" : "length";
    fprintf(stderr, "%ld prompt tokens (%.1f tokens/s), %ld generated (%.1f tokens/s), finish: %s",
            (long)n_ids, prompt_s > 0 ? n_ids / prompt_s : 0.0, (long)g.n_tokens,
            g.n_tokens > 1 && gen_s > 0 ? (g.n_tokens - 1) / gen_s : 0.0, finish);
    if (o->sp.temperature > 0.0f) fprintf(stderr, ", seed %llu", (unsigned long long)o->sp.seed);
    fputc('\n', stderr);
    return 0;
}

static int print_system_info(void) {
    char line[512];
    int32_t n = bitnet_system_info(line, sizeof line);
    if (n < 0) n = 0;
    if ((size_t)n < sizeof line) {
        printf("%s\n", line);
        return 0;
    }
    char *big = malloc((size_t)n + 1);
    if (!big) {
        error_msg("out of memory");
        return EXIT_RUNTIME;
    }
    bitnet_system_info(big, (size_t)n + 1);
    printf("%s\n", big);
    free(big);
    return 0;
}

static int print_info(const char *path, bitnet_model *model) {
    printf(PROG " %s\n", bitnet_version());
    fputs("system:  ", stdout);
    if (print_system_info() != 0) return EXIT_RUNTIME;
    printf("model:   %s\n", path);
    printf("         %s\n", bitnet_model_desc(model));
    printf("arch:    %s\n", bitnet_model_arch(model));
    printf("kernel:  %s\n", bitnet_model_kernel(model));
    printf("vocab:   %ld tokens, context %ld tokens (trained)\n", (long)bitnet_model_n_vocab(model),
           (long)bitnet_model_n_ctx_train(model));
    return 0;
}

static int run(int argc, char **argv) {
    options o;
    int rc = parse_args(argc, argv, &o);
    if (rc < 0) return 0;
    if (rc > 0) return rc;
    if (o.mode == MODE_SYSTEM_INFO) return print_system_info();

    char *path = resolve_model(&o, argc > 0 ? argv[0] : NULL);
    if (!path) return EXIT_RUNTIME;
    bitnet_model *model = load_model(path, &o);
    if (!model) {
        free(path);
        return EXIT_RUNTIME;
    }
    if (o.mode == MODE_INFO) {
        rc = print_info(path, model);
        bitnet_model_free(model);
        free(path);
        return rc;
    }

    rc = EXIT_RUNTIME;
    char *text = NULL;
    int32_t *ids = NULL, n_ids = 0;
    size_t text_len = 0;
    const bitnet_tokenizer *tok = bitnet_model_tokenizer(model);
    if (!tok) {
        error_msg("%s: the model file has no tokenizer", path);
    } else if ((text = prompt_text(&o, &text_len)) != NULL &&
               (ids = tokenize_prompt(tok, text, text_len, &n_ids)) != NULL) {
        if (o.mode == MODE_TOKENIZE) {
            for (int32_t i = 0; i < n_ids; i++) printf(i ? " %ld" : "%ld", (long)ids[i]);
            putchar('\n');
            rc = 0;
        } else {
            rc = run_generate(&o, model, tok, ids, n_ids, text, text_len);
        }
    }
    free(ids);
    free(text);
    bitnet_model_free(model);
    free(path);
    return rc;
}

int main(int argc, char **argv) {
#if defined(_WIN32)
    /* Exact bytes on stdout (no \n -> \r\n), UTF-8 on the console. */
    _setmode(_fileno(stdout), _O_BINARY);
    SetConsoleOutputCP(CP_UTF8);
#endif
    char **args = utf8_argv(argc, argv);
    if (!args) {
        error_msg("out of memory");
        return EXIT_RUNTIME;
    }
    return run(argc, args);
}
