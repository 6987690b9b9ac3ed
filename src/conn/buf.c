/* buf.c: the byte buffers of connections: allocated when data arrives, freed when drained. */
#include "conn/conn_int.h"

#include <stdlib.h>
#include <string.h>

msi_buf *msi_buf_new(size_t cap)
{
    if (cap > SIZE_MAX - sizeof(msi_buf))
        return NULL;
    msi_buf *b = malloc(sizeof(msi_buf) + cap);
    if (!b)
        return NULL;
    b->next = NULL;
    b->start = b->len = 0;
    b->cap = cap;
    return b;
}

msi_buf *msi_buf_reserve(msi_buf *b, size_t cap)
{
    if (b->start > 0) {
        memmove(b->data, b->data + b->start, b->len - b->start);
        b->len -= b->start;
        b->start = 0;
    }
    if (cap <= b->cap)
        return b;
    size_t ncap = b->cap * 2 > cap ? b->cap * 2 : cap;
    msi_buf *nb = realloc(b, sizeof(msi_buf) + ncap);
    if (!nb) {
        ncap = cap;
        nb = realloc(b, sizeof(msi_buf) + ncap);
        if (!nb)
            return NULL;
    }
    nb->cap = ncap;
    return nb;
}
