
/*
 * Copyright (C) ngx_http_scep_module authors
 *
 * Runs a fuzz target's LLVMFuzzerTestOneInput() once on each file named
 * on the command line, without libFuzzer: linked with one t/fuzz/fuzz_*.c
 * and built with gcc's sanitizers by make, it replays the inputs kept in
 * t/fuzz/regress/ on every make test.  A sanitizer report aborts it.
 */


#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int scep_replay_file(const char *path);


int
main(int argc, char **argv)
{
    int  i;

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }

    for (i = 1; i < argc; i++) {
        if (scep_replay_file(argv[i]) != 0) {
            return 1;
        }

        printf("ok %d - %s\n", i, argv[i]);
    }

    printf("1..%d\n", argc - 1);

    return 0;
}


static int
scep_replay_file(const char *path)
{
    long            size;
    FILE           *f;
    unsigned char  *data;

    f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return -1;
    }

    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0)
    {
        fprintf(stderr, "%s: cannot tell its size\n", path);
        fclose(f);
        return -1;
    }

    /* a buffer of exactly the input's size, as libFuzzer gives */

    data = malloc(size ? (size_t) size : 1);
    if (data == NULL) {
        fclose(f);
        return -1;
    }

    if (size && fread(data, 1, (size_t) size, f) != (size_t) size) {
        fprintf(stderr, "%s: short read\n", path);
        free(data);
        fclose(f);
        return -1;
    }

    fclose(f);

    LLVMFuzzerTestOneInput(size ? data : NULL, (size_t) size);

    free(data);

    return 0;
}
