/* jsonl_lines.h - walking a golden .jsonl fixture one record at a time, for
 * the unit tests that compare against reference outputs. Lines that do not
 * parse (the trailing empty line) are passed over. */
#ifndef RAGD_TESTS_JSONL_LINES_H
#define RAGD_TESTS_JSONL_LINES_H

#include <cjson/cJSON.h>
#include <string.h>

/* The next parsed line from *p (NUL-terminated text, advanced past it);
 * NULL at the end. The caller deletes the result. */
static inline cJSON *jsonl_next(char **p)
{
    while (*p && **p) {
        char *nl = strchr(*p, '\n');
        size_t ll = nl ? (size_t)(nl - *p) : strlen(*p);
        cJSON *j = cJSON_ParseWithLength(*p, ll);
        *p = nl ? nl + 1 : NULL;
        if (j)
            return j;
    }
    return NULL;
}

#endif
