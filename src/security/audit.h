/*
 * audit.h -- the tamper-evident audit log.
 *
 * Every request that reaches a handler is recorded as an audit.k8s.io/v1
 * Event, one JSON object per line, in the shape kube-apiserver writes with
 * --audit-log-format=json:
 *
 *   {"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata",
 *    "auditID":"...","stage":"ResponseComplete","requestURI":"...",
 *    "verb":"get","user":{"username":"...","groups":[...]},
 *    "sourceIPs":[...],"userAgent":"...","objectRef":{"resource":"peers",
 *    "namespace":"a","name":"p","apiGroup":"mesh.signalbox.dev",
 *    "apiVersion":"v1alpha1"},"responseStatus":{"metadata":{},"code":200},
 *    "requestReceivedTimestamp":"2024-05-01T10:00:00.123456Z",
 *    "stageTimestamp":"2024-05-01T10:00:00.123789Z",
 *    "annotations":{"authorization.k8s.io/decision":"allow",...,
 *      "audit.signalbox.dev/seq":"42","audit.signalbox.dev/prev":"<64 hex>",
 *      "audit.signalbox.dev/hash":"<64 hex>"}}
 *
 * One difference: Go sorts annotation keys; here the three chain keys come
 * last, in that order (see below). JSON readers do not see key order.
 *
 * Which requests are recorded, and how much of them, follows a Kubernetes
 * audit Policy (rules matched in order, first match wins, no match: None).
 * We have no YAML parser, so the policy file must be JSON, which YAML
 * parsers read too. Without a policy everything is recorded at Metadata.
 *
 * THE HASH CHAIN. Every line carries three annotations:
 *
 *   seq   decimal, 1 for the first record ever, +1 for each record, across
 *         rotated files;
 *   prev  the hash of the record before it (64 zeros for seq 1);
 *   hash  hex SHA-256( prev as 64 hex characters || L ), where L is the
 *         line exactly as written, without its newline, with the 64 hex
 *         digits of the hash value itself replaced by 64 '0's.
 *
 * The writer always puts "annotations" last in the event and the hash key
 * last in it, so every line ends with
 *     "audit.signalbox.dev/hash":"<64 hex>"}}
 * and the digits to zero sit at a fixed offset from the end (the 67th to
 * the 4th byte before the newline): no searching, no ambiguity. Nothing is
 * re-serialized to verify a line: the verifier hashes the bytes on disk.
 * `prev` is the previous record's hash, which commits to every byte of that
 * line but its own hash field, and that field is checked against the next
 * record's prev: so each record commits to the whole previous line. By
 * induction the last hash commits to every byte of every record before it.
 * Anyone can check a line by hand:
 *     printf '%s%s' "$prev" "$line_with_hash_zeroed" | sha256sum
 *
 * What verification catches (audit_verify reports the FIRST problem):
 *   - an edited byte: the line's hash no longer matches (altered), or the
 *     line is no longer JSON of this shape (malformed);
 *   - a deleted record: a gap in seq, or prev differs from the hash of the
 *     line before (deleted);
 *   - moved records: seq goes back, or a record missing at one place turns
 *     up later (reordered);
 *   - a cut-off last line: no newline at the end (truncated).
 * What it cannot catch from the files alone: deleting the LAST records.
 * What remains is a perfectly valid shorter chain. Hence the ANCHOR: a
 * small file PATH.anchor beside the live log holding the seq and hash of
 * the latest durable record ("%020llu <64 hex>\n", rewritten in place). The
 * verifier checks that the chain reaches the anchor's seq with the anchor's
 * hash; if the log stops short, the tail was truncated. The anchor is
 * written at each sync point (below), so it never names a record that a
 * crash could lose; the price is that deleting the records of the last
 * unsynced <= 100 ms goes unnoticed.
 *   Likewise deleting the HEAD is invisible: rotation drops old files by
 * design. audit_verify reports the first seq; a complete log starts at 1.
 *   The chain has no secret key. Someone who can write the log AND the
 * anchor can recompute every hash after an edit. The chain proves the log
 * unchanged up to a hash the verifier trusts: keep copies of the anchor (or
 * of the last line `signalbox audit verify` prints) where the server's
 * user cannot write, e.g. ship them off the machine.
 *
 * DURABILITY. Each record is one write(2) of the whole line (O_APPEND), so
 * a reader never sees half a record unless the machine dies mid-write.
 * fdatasync is batched: audit_write syncs when 100 ms have passed since the
 * last sync, and the server calls audit_flush from a timer (every 100 ms
 * or so) and on shutdown; rotation and audit_close sync too. So a crash of
 * the process loses nothing; a power loss may lose the records of the last
 * 100 ms (plus whatever was written since the last audit_flush if the
 * timer does not run). The sync runs on the caller's thread: the loop
 * stalls for one fdatasync (of the log, then of the anchor) at most every
 * 100 ms.
 *
 * ROTATION. When a record would take the file past max_bytes, PATH.N-1 is
 * renamed to PATH.N ... PATH to PATH.1 (PATH.max_backups is dropped) and a
 * new PATH starts; its first record's prev is the last hash of PATH.1.
 * Verify oldest first: PATH.2, PATH.1, PATH.
 *
 * SECRETS. The module never sees request headers, so Authorization headers
 * and bearer tokens cannot reach the log. Request and response bodies are
 * recorded at the Request and RequestResponse levels; audit_event_new
 * passes its copies through audit_redact. Secret objects (data, not
 * spec/status) should be audited at Metadata by the policy, as Kubernetes
 * advises.
 *
 * Errors: functions return 0 or a negative errno and, where they take one,
 * write a message into err (NUL-terminated when errlen > 0; err may be
 * NULL).
 *
 * Threads: an audit_log is for one thread (the event loop). A policy is
 * immutable once loaded and may be read from several threads.
 */
#ifndef SIGNALBOX_SECURITY_AUDIT_H
#define SIGNALBOX_SECURITY_AUDIT_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Audit levels, in increasing detail. */
enum {
	AUDIT_LEVEL_NONE = 0,
	AUDIT_LEVEL_METADATA,
	AUDIT_LEVEL_REQUEST,
	AUDIT_LEVEL_REQUEST_RESPONSE,
};

/* Stages, as bits so that a set of omitted stages is a mask. */
enum {
	AUDIT_STAGE_REQUEST_RECEIVED = 1 << 0,
	AUDIT_STAGE_RESPONSE_STARTED = 1 << 1,
	AUDIT_STAGE_RESPONSE_COMPLETE = 1 << 2,
	AUDIT_STAGE_PANIC = 1 << 3,
};

/* A record line longer than this is refused (write) or malformed (verify). */
#define AUDIT_MAX_LINE (16u << 20)

/* The chain annotations. */
#define AUDIT_ANN_SEQ  "audit.signalbox.dev/seq"
#define AUDIT_ANN_PREV "audit.signalbox.dev/prev"
#define AUDIT_ANN_HASH "audit.signalbox.dev/hash"

typedef struct audit_policy audit_policy;
typedef struct audit_log audit_log;

/*
 * What a policy rule looks at. Every string is borrowed; NULL reads as "".
 * groups is NULL-terminated (or NULL). For a resource request, verb is the
 * Kubernetes verb (get, list, watch, create, update, patch, delete,
 * deletecollection); otherwise it is the lower-case HTTP method and path is
 * the URL path (no query).
 */
typedef struct audit_attrs {
	const char *user;
	const char *const *groups;
	const char *verb;
	const char *group; /* API group, "" for the core group */
	const char *resource;
	const char *subresource;
	const char *namespace;
	const char *name;
	const char *path;
	bool resource_request;
} audit_attrs;

/*
 * One request as the server saw it, for audit_event_new. Strings and
 * objects are borrowed. NULL strings are left out of the event.
 */
typedef struct audit_request {
	const audit_attrs *attrs;      /* user, groups, verb, objectRef */
	const char *audit_id;	       /* NULL: a new random UUID */
	const char *request_uri;       /* as the client sent it, with query */
	const char *api_version;       /* objectRef.apiVersion, e.g. "v1" */
	const char *const *source_ips; /* NULL-terminated, may be NULL */
	const char *user_agent;
	struct timespec received; /* CLOCK_REALTIME on arrival; 0: stage time */
	int code;		  /* HTTP status; 0 before the response */
	const char *status;	  /* "Success" | "Failure" | NULL */
	const char *reason;	  /* Status reason, e.g. "NotFound" */
	const char *message;
	const char *decision; /* "allow" | "forbid" | NULL */
	const char *authz_reason;
	const json_t *request_object;  /* recorded from Request level */
	const json_t *response_object; /* from RequestResponse level */
} audit_request;

/* The outcome of audit_verify. */
typedef enum audit_problem {
	AUDIT_INTACT = 0,
	AUDIT_ALTERED,	 /* a line's hash does not match its bytes */
	AUDIT_DELETED,	 /* seq gap, or prev is not the previous hash */
	AUDIT_REORDERED, /* seq goes back, or a missing seq comes later */
	AUDIT_MALFORMED, /* not a record line */
	AUDIT_TRUNCATED, /* last line cut short, or chain short of anchor */
} audit_problem;

typedef struct audit_verify_result {
	audit_problem problem;
	/* the records checked good (all of them when intact) */
	uint64_t records;
	uint64_t first_seq, last_seq;
	char last_hash[65];
	/* whether PATH.anchor (PATH the last file) was found and checked */
	bool anchored;
	/* where the problem is: index into paths, 1-based line, its seq (0
	 * when unreadable); what says it in words */
	size_t file;
	unsigned long line;
	uint64_t seq;
	char what[512];
} audit_verify_result;

/* Prototypes */

/* "None", "Metadata", ... and back; audit_level_parse gives -1 if unknown.
 * Likewise the stage names of a single stage bit. */
const char *audit_level_name(int level);
int audit_level_parse(const char *s);
const char *audit_stage_name(int stage);
int audit_stage_parse(const char *s);

/*
 * Load an audit.k8s.io/v1 Policy from a JSON file. On success *out is a
 * new policy (audit_policy_free) and 0 is returned. On error *out is NULL,
 * the message names the line ("the policy file must be JSON: line 3: ...")
 * or the field ("rules[2].level: ...").
 */
int audit_policy_load(const char *path, audit_policy **out, char *err,
		      size_t errlen);

/* As audit_policy_load, from text in memory (len bytes). */
int audit_policy_parse(const char *text, size_t len, audit_policy **out,
		       char *err, size_t errlen);

/* Free p. NULL is fine. */
void audit_policy_free(audit_policy *p);

/* The level of the first rule that matches a; None when none does. A NULL
 * policy gives Metadata for everything. */
int audit_policy_level(const audit_policy *p, const audit_attrs *a);

/* The stages not to record for a: the union of the policy's omitStages and
 * the matching rule's. 0 for a NULL policy. */
unsigned audit_policy_omit_stages(const audit_policy *p, const audit_attrs *a);

/*
 * A new Event (new reference, NULL on OOM or when level is None) for one
 * stage of r. stage_time NULL means now. requestObject is included from
 * the Request level on, responseObject at RequestResponse and only at
 * ResponseComplete, both only for resource requests; they are deep copies
 * passed through audit_redact.
 */
json_t *audit_event_new(const audit_request *r, int level, int stage,
			const struct timespec *stage_time);

/* Write a new random (version 4) UUID into buf. */
void audit_new_id(char buf[37]);

/*
 * Replace with "[REDACTED]" every string member of obj's "spec" and
 * "status" (at any depth, through arrays) whose name, ignoring case, is
 * "token", "key", "password" or "secret", or ends in "token", "password",
 * "secret" or "privatekey" (bearerToken, adminPassword, clientSecret,
 * privateKey). Names like "publicKey" stay. Note that label selector
 * requirements' "key" is redacted too. obj is modified in place; a
 * non-object is left alone.
 */
void audit_redact(json_t *obj);

/*
 * Open (create, mode 0600) the log at path and its anchor path.anchor,
 * continuing the chain after the last record of path (or of path.1 when
 * path is missing or empty, as after a crash mid-rotation). The last line
 * must be a whole, well-formed record whose hash checks, and it must not
 * stop short of the anchor; otherwise open refuses (NULL, message in err)
 * rather than start a new chain silently. Only the tail is checked: run
 * audit_verify for the rest. max_bytes 0 means no rotation; max_backups
 * is how many rotated files to keep. Returns NULL with errno set on error.
 */
audit_log *audit_open(const char *path, size_t max_bytes, int max_backups,
		      char *err, size_t errlen);

/*
 * Append event (borrowed) as the next record. Its annotations gain the
 * three chain keys (any the caller set are replaced), which the caller
 * may read afterwards; "annotations" is moved to the end of event. On
 * error nothing is appended and the chain does not advance.
 */
int audit_write(audit_log *l, json_t *event);

/* fdatasync the log if anything was written since the last sync, then
 * update the anchor. Cheap when there is nothing to do. */
int audit_flush(audit_log *l);

/* The seq of the last record written (0 before any). */
uint64_t audit_last_seq(const audit_log *l);

/* Flush and close. NULL is fine. Returns the flush's result. */
int audit_close(audit_log *l);

/*
 * Verify the chain across paths[0..n), oldest first (PATH.2, PATH.1,
 * PATH), and against paths[n-1].anchor when that file exists. Returns 0
 * with the verdict in res, or a negative errno when a file cannot be read
 * (res->what says which). A problem is reported at the first record where
 * it shows; the records before it are intact.
 */
int audit_verify(const char *const *paths, size_t n, audit_verify_result *res);

/* "intact", "altered", ... */
const char *audit_problem_name(audit_problem p);

#endif
