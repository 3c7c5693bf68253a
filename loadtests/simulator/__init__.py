"""A traffic simulator with a hidden ground truth, for canary and shadow rollouts without users.

Simulated users ask the gateway for lists, read them with position bias, and click, watch, like
and hide according to a preference model the served models never see; their events go to the
events API as a real client's would. A better model then gets more clicks, measurably and
deterministically under a seed. Defaults below are those of ``settings.py``.

Ground truth (``ground_truth.py``, fit in ``truth_fit.py``). Fit on all 100,000 MovieLens-100K
ratings (``fit_on="all"``; ``"heldout"``: only those from the temporal validation cut-off on,
which the served models never fit on). Interest: EASE (lambda 300) on the user x item matrix;
each user's EASE scores over the 1,682 items become normal scores ``z`` of their rank (0: the
user's median item, +2.3: their top 1 %). Ratings: mean + shrunk user/item biases + a rank-10
SVD of the residuals. Cached in ``.cache/simulator/`` by data sha256 and fit settings (about 2 s
to fit, 20 ms to load).

Calibration, per user and item:

- ``P(click | examined) = sigmoid(logit(0.02) + 1.0 * z)``: 2.5 % for a random unrated item,
  9 % for the ten most popular unrated items, 14 % for the user's ten best unrated items, 39 %
  for their top item;
- ``P(like | click) = sigmoid(logit(0.3) + 1.5 * (r - 4))``, ``r`` the predicted rating;
- dwell given a click: log-normal, median ``900 s * exp(0.5 * (r - 3.5))``, log-sigma 0.8,
  capped at 3 h;
- ``P(hide | examined, not clicked) = sigmoid(logit(0.01) - 1.0 * z)``.

Unknown items get ``z = 0`` and the mean rating; users the truth does not know (``sim-new-<n>``)
rank the catalogue like the average user (or like a MovieLens user picked by a hash of the id,
``new_user_taste="persona"``).

Behaviour (``behaviour.py``): the position-based examination model, ``P(examine position p) =
1 / (1 + p) ** 1.0`` (p = 0 at the top), independent per position; then click, like, dwell and
hide as above. An item clicked or hidden earlier in the session is not clicked again. Every
request draws from its own generator seeded by (seed, user, session, request), a fixed block of
numbers per position, so the same answers give the same events.

What is logged (``payloads.py``): an ``impression`` for every shown item (examination stays
hidden, as in real logs), ``click`` + ``watch`` (value: dwell seconds) + maybe ``like`` per
click, ``hide``; ``request_id`` and ``position`` from the answer; event ids
``<request_id>:<position>:<type>``; timestamps = arrival of the answer + 0.8 s per position read
(the watch is reported 1 s after its click with the whole dwell as its value: time is compressed).

Population (``population.py``): sessions arrive open-loop (Poisson) so that requests come at the
asked rate; 10 % are new users, the rest MovieLens users drawn with weight ``n_ratings ** 0.5``;
a session has a geometric number of requests (mean 3, at most 10) 2 s apart.

Outcome (``driver.py``, ``summary.py``): requests, errors, degraded answers, events posted by
type, and per arm (the answer's ``variant``): users, impressions, clicks, likes, hides, watch
seconds, and the ground-truth expected clicks of the served lists (sum of P(examine) * p_click),
which compares arms by true quality without the click noise. ``offline.py`` runs rankers
against the same truth and behaviour without the live stack (arms by salted hash).

Run: ``python -m loadtests.simulator --gateway URL --events URL --rate 20 --duration 60 --seed 1``
or ``make simulate`` (the local runtime's ports 8000 and 8001).
"""
