/*
 * proto.h -- decode Kubernetes protobuf request bodies into JSON.
 *
 * kubectl and every client-go typed client send their request bodies as
 * Content-Type: application/vnd.kubernetes.protobuf, and client-go does not
 * retry with JSON when the server answers 415. signalbox works on JSON, so
 * the HTTP layer turns such a body into the JSON object a JSON client would
 * have sent, and from there on nothing knows the difference.
 *
 * The wire format (k8s.io/apimachinery/pkg/runtime/serializer/protobuf):
 *
 *   "k8s\0"  runtime.Unknown {
 *              1: typeMeta { 1: apiVersion, 2: kind }
 *              2: raw              -- the object's own message, as bytes
 *              3: contentEncoding  -- always empty in practice
 *              4: contentType      -- empty or the protobuf media type
 *            }
 *
 * The envelope has no length of its own: it runs to the end of the body.
 *
 * Only a fixed set of kinds is known (see proto.c for the list and for every
 * message's fields, numbered as in the upstream generated.proto files). Each
 * message is a table of fields; one table-driven decoder walks them all.
 * A field is written to the JSON object when it is on the wire, except a
 * zero value ("", 0, false) of a field whose Go JSON tag says omitempty and
 * whose Go type is not a pointer: client-go writes every non-pointer field,
 * and this rule gives back what encoding/json would print for the decoded
 * Go struct (`kubectl create ... --dry-run=client -o json`). A zero
 * metav1.Time becomes null, as in Go. Fields absent from the wire are left
 * out (Go would print some of them as null or {}). Unknown fields are
 * skipped. metadata.managedFields is skipped.
 *
 * Untrusted input: the decoder never reads outside [data, data + size),
 * checks every length against what is left, refuses nesting deeper than
 * PROTO_MAX_DEPTH, and refuses strings that are not UTF-8 or hold a NUL
 * (as JSON parsing does). It does not recurse into anything but the fixed
 * tables. The output holds at most one JSON node per two input bytes, so
 * bound the body size as for a JSON body.
 *
 * Errors: NULL, and a message naming what is wrong and where, truncated to
 * errlen and always NUL-terminated when errlen > 0 (err may be NULL):
 *
 *   proto: truncated field at byte 37 in metadata.name
 *   proto: unknown kind "Pod" for apiVersion "v1"
 *
 * Memory: proto_decode returns a new reference; the caller json_decref()s
 * it. Nothing here keeps state; both functions are thread-safe.
 */
#ifndef SIGNALBOX_API_PROTO_H
#define SIGNALBOX_API_PROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* The media type, and the 4 bytes every body starts with. */
#define PROTO_CONTENT_TYPE "application/vnd.kubernetes.protobuf"
#define PROTO_MAGIC	   "k8s\0"
#define PROTO_MAGIC_LEN	   4

/* The deepest nesting of messages the decoder follows. */
#define PROTO_MAX_DEPTH 32

/* Prototypes */

/*
 * Decode a Kubernetes protobuf body of size bytes into a new JSON object
 * with "apiVersion" and "kind" set from the envelope and the object's
 * fields beside them. NULL on bad input (or out of memory), with a message
 * in err.
 */
json_t *proto_decode(const void *data, size_t size, char *err, size_t errlen);

/*
 * True when content_type (a Content-Type header value, may be NULL) is the
 * Kubernetes protobuf media type, in any case, with or without parameters.
 */
bool proto_is_content_type(const char *content_type);

#endif
