/*
 * webhook.pml: the WorkOS webhook's exactly-once delivery (webhook.go, deliver) as a Promela model for spin.
 * README.md in this folder says what it proves and what it leaves out; check.sh runs every variant.
 *
 * One magic_auth.created event. WorkOS (the sender) posts it to any of NR replicas, again and again until it
 * receives a 2xx: a retry may overlap an attempt still running or come much later. Each replica runs deliver():
 *
 *   claim_    Put(key, "", token, lease)       webhook.go:150       set-if-absent (SET NX PX)
 *   taken     Get(key): "done" -> 200, else 409 webhook.go:154-159
 *   fetch_    GET the magic auth from WorkOS     webhook.go:170       fails -> release_, 503 (webhook.go:171-174)
 *   renew_    Put(key, token, token, lease)     webhook.go:187-196   lost -> 409, no mail
 *   send_     SMTP                               webhook.go:197       refused or failed -> release_, 503 (198-199)
 *   done_     Put(key, token, "done", 72h)      webhook.go:201-202   via settle (webhook.go:161-169)
 *   release_  Put(key, token, "", 0)            webhook.go:172, 198  via settle
 *   a store error on the claim or the renewal: mail without de-duplication (webhook.go:151-153, 189-191)
 * Line numbers are webhook.go's as this was written; the comments at each step also quote the code.
 *
 * Faults, each possible before every step: the replica is killed (it restarts empty and serves new requests; its
 * claim expires with the lease), the replica stalls past its delivery deadline (a GC pause, a frozen VM, a slow
 * network), WorkOS's API fails, SMTP refuses, SMTP accepts and then the connection drops, WorkOS stops waiting for
 * an answer (its retry then comes anyway), and, with -DREDIS, Redis is unreachable on any call.
 *
 * Time is not a number here but an order of events, which is what the code relies on:
 *   - every call of a delivery runs under one context, deadline = start + deliveryTimeout (33 s, webhook.go:30,147);
 *     WorkOS's client and SMTP fail once it has passed (mail.go, exchange: "the sooner of smtpTimeout and ctx's"),
 *     but a store call may still reach Redis and run, whatever it reports (dedup.go, redisStore.do: the command is
 *     written before the select that returns ctx.Err());
 *   - a claim lives webhookLease (60 s) from its last claim or renewal, and both happen after the start, so it
 *     cannot expire before its holder's deadline has passed (33 s < 60 s). After that it may expire at any moment.
 * The variant -DLONGDEADLINE drops the second rule (a deadline as long as the lease or longer) to show it carries
 * the proof.
 *
 * Variants (-D at spin -a):  UNFENCED     release, renewal and done unconditional (the old code: DEL, SET)
 *                            REDIS        Redis may fail any call (at least once still holds; a duplicate is allowed)
 *                            LIVENESS     no retry bound, a fault budget, weak fairness: <> a mail exists
 *                            STRICT_CRASH, STRICT_SMTP   take one named window out of the allowance (must fail)
 *                            LONGDEADLINE claims may expire before their holder's deadline (must fail)
 *                            NOLEASE      claims never expire (with LIVENESS: must fail)
 *                            NORENEW      no renewal before the mail (verifies: the deadline carries the proof)
 */

#ifndef NR
#define NR 3            /* replicas: at most NR deliveries of the event in progress at once */
#endif
#ifndef TRIES
#define TRIES 3         /* WorkOS's attempts at any time, before its last, late one (the 3-day window, bounded) */
#endif
#ifndef MAXFAULTS
#define MAXFAULTS 2     /* LIVENESS: faults in a whole run (then the system stays healthy) */
#endif

/* The one key, webhook:<event id>: absent, "claimed <token of replica r>" (1..NR), or "done". */
#define ABSENT 0
#define DONE   (NR+1)
#define CLAIMED(v) ((v) >= 1 && (v) <= NR)

byte key = ABSENT;
bool expok;          /* the claim in key may expire now: its holder's deadline has passed (or LONGDEADLINE) */
bool keywin;         /* the claim's holder had its mail accepted (250) and has not yet marked it done */
byte mails;          /* mails SMTP accepted for this event, counted up to 3 */
bool got2xx;         /* WorkOS received a 2xx: it stops retrying */
bool healthy;        /* no more faults (WorkOS's last retry meets a working system) */
byte busy;           /* deliveries in progress */
bool dl[NR+1];       /* dl[r]: the delivery now running on replica r is past its deadline */

/* The named windows. Each time a delivery passes through one, one more mail is excused (counted up to 2):
 *   crash  a claim expired between its holder's 250 and its done mark: the holder was killed or stalled there
 *   smtp   SMTP accepted a mail but its sender saw an error (a drop after the final dot, a 250 after the deadline)
 *   redis  Redis failed the claim or the renewal (the mail goes out undeduped) or the done mark (-DREDIS only) */
byte excused;

#ifdef LIVENESS
byte faults;
#define FAULT (faults < MAXFAULTS)
#define SPEND faults++
#else
#define FAULT (!healthy)
#define SPEND skip
#endif

#ifdef REDIS
#define REDISDOWN FAULT
#else
#define REDISDOWN false
#endif

#ifdef NOLEASE
#undef NOLEASE
#define NOLEASE true             /* claims never expire: SET NX without PX */
#else
#define NOLEASE false
#endif

#ifdef NORENEW
#undef NORENEW
#define NORENEW true             /* no renewal before the mail (a design question, not the code) */
#else
#define NORENEW false
#endif

#ifdef UNFENCED
#define HOLDS(t) true            /* the old code: DEL and SET whatever the key holds */
#else
#define HOLDS(t) (key == (t))    /* Put(key, token, ...): only while the claim is still this delivery's */
#endif

#ifdef STRICT_CRASH
#define CRASH_WINDOW false        /* the crash window is not excused */
#else
#define CRASH_WINDOW true
#endif
#ifdef STRICT_SMTP
#define SMTP_WINDOW false         /* the SMTP window is not excused */
#else
#define SMTP_WINDOW true
#endif

/* A delivery passed through a named window (that this variant excuses): one more mail is allowed. */
#define WINDOW(excusable) if :: (excusable) && excused < 2 -> excused++ :: else fi

/* Names of the steps (for the trail: spin -t prints them) and of the answers. */
mtype = { claim, renewal, release, done_mark, no_answer, answer_200, answer_409, answer_503 };

chan req = [0] of { bit };  /* WorkOS posts the event; any idle replica takes it */
byte posted;                /* attempts WorkOS posted */

/* The key changes (dedup.go Put: one atomic compare-and-set). A claim or renewal made before its holder's deadline
 * cannot expire until that deadline has passed; one made after may expire at once. */
inline setkey(v) {
  key = v;
#ifdef LONGDEADLINE
  expok = CLAIMED(v);
#else
  expok = (CLAIMED(v) && dl[r]);
#endif
  keywin = false
}

/* Put(key, old, value), where cond is "key now holds old" (dedup.go: the store interface's Put; redisStore.Put sends
 * SET NX PX for old "" and the compare-and-set script putScript otherwise; memoryStore.Put holds its mutex). ok: it
 * happened, as reported; err: the call failed, whether or not it ran: Redis unreachable (the command never arrived,
 * or it ran and its reply was lost; down is set), or past the deadline (redisStore.do returns ctx.Err(), but it
 * wrote the command first, and Redis runs it). Called inside an atomic block. */
inline put(cond, v, what) {
  ok = false; err = false; down = false;
  if
  :: true -> if :: cond -> setkey(v); ok = true :: else fi
  :: REDISDOWN -> SPEND; err = true; down = true
  :: REDISDOWN -> SPEND; if :: cond -> setkey(v) :: else fi; err = true; down = true
  :: dl[r] -> err = true
  :: dl[r] -> if :: cond -> setkey(v) :: else fi; err = true
  fi;
  if
  :: ok -> printf("replica %d: %e: ok (key %d)\n", r, what, key)
  :: !ok && !err -> printf("replica %d: %e: refused, the key holds %d\n", r, what, key)
  :: err && down -> printf("replica %d: %e: Redis unreachable (key %d)\n", r, what, key)
  :: err && !down -> printf("replica %d: %e: error, past the deadline (key %d)\n", r, what, key)
  fi
}

/* The delivery is over (answered or killed): its deadline passes in time, so a claim it left may expire. The locals
 * are reset so that idle replicas share one state. */
inline finish() {
  dl[r] = true;
  if :: key == r -> expok = true :: else fi;
  busy--;
  fenced = false; ok = false; err = false; down = false; ans = no_answer; val = 0
}

/* Two faults are possible before every step of a delivery, l being the step's label: the replica stalls there
 * past its deadline (then takes the step), or it is killed there (it restarts empty and serves new requests). */
#define STALL(l) \
  :: atomic { FAULT && !dl[r] -> SPEND; printf("replica %d: stalls past its deadline\n", r); \
              dl[r] = true; if :: key == r -> expok = true :: else fi; goto l }
#define KILL \
  :: atomic { FAULT -> SPEND; printf("replica %d: killed\n", r); finish(); goto end_idle }

inline mail() {
  if :: mails < 3 -> mails++ :: else fi
}

proctype Replica(byte r) {
  bool fenced, ok, err, down;
  mtype ans = no_answer;        /* the answer to WorkOS */
  byte val;                     /* what Get read */

end_idle:
  atomic {
    req?_ ->                    /* handleWebhook, webhook.go:116-131: s.background.Go(... s.deliver(...)) */
    busy++;
#ifndef LIVENESS
    posted++;
#endif
    dl[r] = false;              /* a new delivery: a new deadline, and a new token (README: why r serves as one) */
    printf("WorkOS posts the event to replica %d\n", r)
  }

claim_:                         /* webhook.go:150: claimed, err := s.store.Put(ctx, key, "", token, webhookLease) */
  if
  STALL(claim_)
  KILL
  :: atomic {
       put(key == ABSENT, r, claim);
       if
       :: err -> fenced = false; WINDOW(down); goto fetch_  /* webhook.go:151-153: s.undeduped(eventID, err) */
       :: !err && ok -> fenced = true; goto fetch_
       :: else -> goto taken
       fi
     }
  fi;

taken:                          /* webhook.go:154-159: err == nil && state == "done" -> 200, else 409 */
  if
  STALL(taken)
  KILL
  :: atomic {
       if
       :: true -> val = key; err = false
       :: REDISDOWN -> SPEND; err = true
       :: dl[r] -> err = true
       fi;
       if
       :: !err && val == DONE -> ans = answer_200
       :: else -> ans = answer_409
       fi;
       if
       :: err -> printf("replica %d: Get: error\n", r)
       :: else -> printf("replica %d: Get: key %d\n", r, val)
       fi;
       goto answer
     }
  fi;

fetch_:                         /* webhook.go:170: ma, err := s.workos.magicAuth(ctx, magicAuthID) */
  if
  STALL(fetch_)
  KILL
  :: atomic { !dl[r] -> printf("replica %d: fetch: ok\n", r); if :: fenced && !NORENEW -> goto renew_ :: else -> goto send_ fi }
  :: atomic { !dl[r] && FAULT -> SPEND; printf("replica %d: fetch: WorkOS failed\n", r); goto release_ }
  :: atomic { dl[r] -> printf("replica %d: fetch: past the deadline\n", r); goto release_ }
  fi;

renew_:                         /* webhook.go:187-196: s.store.Put(ctx, key, token, token, webhookLease) */
  if
  STALL(renew_)
  KILL
  :: atomic {
       put(HOLDS(r), r, renewal);
       if
       :: err -> fenced = false; WINDOW(down); goto send_  /* webhook.go:189-191: fenced = false, undeduped */
       :: !err && ok -> goto send_
       :: else -> ans = answer_409; goto answer      /* webhook.go:192-194: case !ok: 409 */
       fi
     }
  fi;

send_:                          /* webhook.go:197: s.sendCode(ctx, addr, ...); mail.go exchange, under ctx's deadline */
  if
  STALL(send_)
  KILL
  :: atomic {
       !dl[r] ->                /* 250 after the final dot (mail.go: err = wc.Close(), "the server's verdict") */
       mail(); if :: key == r -> keywin = true :: else fi;
       printf("replica %d: SMTP: 250 (mails %d)\n", r, mails);
       goto done_
     }
  :: atomic {                   /* refused (4xx/5xx at any stage), or the connection failed before the final dot */
       !dl[r] && FAULT -> SPEND; printf("replica %d: SMTP: refused (mails %d)\n", r, mails); goto release_
     }
  :: atomic {                   /* accepted, then the connection dropped, or the 250 came after the deadline */
       !dl[r] && FAULT -> SPEND; mail(); WINDOW(SMTP_WINDOW);
       printf("replica %d: SMTP: accepted, but the sender sees an error (mails %d)\n", r, mails); goto release_
     }
  :: atomic {                   /* past the deadline: the dial fails at once, nothing is sent (net.Dialer{Deadline}) */
       dl[r] -> printf("replica %d: SMTP: not sent, past the deadline\n", r); goto release_
     }
  fi;

done_:                          /* webhook.go:201-202: settle("done", webhookDoneTTL); 200. The crash window. */
  if
  STALL(done_)
  KILL
  :: atomic {
       if :: fenced -> put(HOLDS(r), DONE, done_mark) :: else fi;
       if                       /* Redis failed the done mark: that is the Redis window, not the crash window */
       :: fenced && down -> WINDOW(true); if :: key == r -> keywin = false :: else fi
       :: else
       fi;
       ans = answer_200;
       goto answer
     }
  fi;

release_:                       /* webhook.go:171-174, 197-199: settle("", 0); 503 */
  if
  STALL(release_)
  KILL
  :: atomic {
       if :: fenced -> put(HOLDS(r), ABSENT, release) :: else fi;
       ans = answer_503;
       goto answer
     }
  fi;

answer:                         /* handleWebhook, webhook.go:132-136: the answer, unless WorkOS stopped waiting */
  atomic {
    if
    :: ans == answer_200 ->
      if
      :: got2xx = true; printf("replica %d: %e, WorkOS stops\n", r, ans)
      :: !healthy ->            /* case <-r.Context().Done() (webhook.go:135): the 2xx never arrives */
         printf("replica %d: %e, but WorkOS stopped waiting\n", r, ans)
      fi
    :: else -> printf("replica %d: %e\n", r, ans)
    fi;
    finish();
    goto end_idle
  }
}

/* Redis expires a claim whose lease ran out (the PX of SET). Done lasts 72 h, WorkOS's whole retry window. */
active proctype Lease() {
end:
  do
  :: atomic {
       CLAIMED(key) && expok && !NOLEASE ->
       if
       :: keywin -> printf("the lease of claim %d runs out after its mail, before its done mark\n", key)
       :: else -> printf("the lease of claim %d runs out\n", key)
       fi;
       if :: keywin -> WINDOW(CRASH_WINDOW) :: else fi;
       key = ABSENT; expok = false; keywin = false
     }
  od
}

#ifdef LIVENESS

/* WorkOS retries until a 2xx arrives, without bound; faults are bounded by MAXFAULTS. */
active proctype WorkOS() {
  do
  :: !got2xx -> req!1
  :: got2xx -> break
  od
}

/* At least once: every run (weakly fair) reaches a mail. */
ltl atleastonce { <> (mails > 0) }

#else

/* WorkOS posts TRIES attempts whenever it likes (overlapping or late) until a 2xx arrives. Its retries go on for
 * 3 days, far beyond a lease: so its last retry comes late, after every earlier attempt ended and their claims
 * expired, and it meets a working system (the at-least-once promise is conditional on that). It must get a 2xx. */
active proctype WorkOS() {
  do
  :: !got2xx && posted < TRIES -> req!1
  :: got2xx || posted == TRIES -> break
  od;
  if
  :: got2xx
  :: else ->
    atomic { busy == 0 && !CLAIMED(key) -> healthy = true; printf("WorkOS: the last, late retry\n") }
    req!1;
    busy == 0;
    assert(got2xx)
  fi;
  assert(mails > 0)
}

#endif

/* Safety, checked in every reachable state. */
#define NO2XXBEFOREMAIL (!got2xx || mails > 0)
#define NODONEBEFOREMAIL (key != DONE || mails > 0)
#define ATMOSTONCE (mails <= 1 + excused)

active proctype Invariants() {
end:
  atomic {
    !(NO2XXBEFOREMAIL && NODONEBEFOREMAIL && ATMOSTONCE) ->
    assert(NO2XXBEFOREMAIL);
    assert(NODONEBEFOREMAIL);
    assert(ATMOSTONCE)
  }
}

init {
  byte i = 1;
  atomic {
    do
    :: i <= NR -> run Replica(i); i++
    :: else -> break
    od
  }
}
