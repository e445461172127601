/* A C program against the committed header and the built library: the header compiles as C,
 * the symbols link, and the basic contracts hold. Run by tests/c_program.rs. */
#include "polystream.h"

#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                   \
    do {                                                              \
        if (!(cond)) {                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            failures++;                                               \
        }                                                             \
    } while (0)

int main(void) {
    CHECK(polystream_abi_version() == POLYSTREAM_ABI_VERSION);

    PolystreamSseDecoder *sse = polystream_sse_decoder_new(0);
    CHECK(sse != NULL);
    const char *input = "id: 1\ndata: hello\n\n";
    char *events = NULL;
    CHECK(polystream_sse_decoder_feed(sse, (const uint8_t *)input, strlen(input), &events) == POLYSTREAM_OK);
    CHECK(events != NULL && strcmp(events, "[{\"event\":\"message\",\"data\":\"hello\",\"id\":\"1\",\"retry\":null}]") == 0);
    polystream_string_free(events);
    polystream_sse_decoder_free(sse);

    CHECK(polystream_chunk_decoder_new("nope") == NULL);
    CHECK(polystream_last_error_code() == POLYSTREAM_ERR_UNKNOWN_DIALECT);
    CHECK(strcmp(polystream_last_error_kind(), "unknown_dialect") == 0);

    PolystreamChunkDecoder *dec = polystream_chunk_decoder_new_with_options("openai_chat", 0, POLYSTREAM_ACCUMULATE);
    CHECK(dec != NULL);
    const char *stream =
        "data: {\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: [DONE]\n\n";
    char *chunks = NULL;
    CHECK(polystream_chunk_decoder_feed(dec, (const uint8_t *)stream, strlen(stream), &chunks) == POLYSTREAM_OK);
    CHECK(chunks != NULL && strstr(chunks, "\"content\":\"Hi\"") != NULL);
    polystream_string_free(chunks);
    CHECK(polystream_chunk_decoder_is_done(dec) == 1);
    char *completion = NULL;
    CHECK(polystream_chunk_decoder_snapshot(dec, &completion) == POLYSTREAM_OK);
    CHECK(completion != NULL && strstr(completion, "\"object\":\"chat.completion\"") != NULL);
    polystream_string_free(completion);
    polystream_chunk_decoder_free(dec);

    CHECK(polystream_debug_panic() == POLYSTREAM_ERR_PANIC);
    CHECK(strcmp(polystream_last_error_kind(), "panic") == 0);
    CHECK(polystream_sse_decoder_feed(NULL, NULL, 0, &events) == POLYSTREAM_ERR_NULL_POINTER);

    if (failures == 0) printf("c smoke: ok\n");
    return failures == 0 ? 0 : 1;
}
