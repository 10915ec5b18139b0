-- The append functions run the same statements on every call with different arrays. PostgreSQL's
-- default (plan_cache_mode = auto) re-plans them for each call's parameters, which was half of
-- an append's server CPU at batched-mode rates (about 1 ms of 1.1 ms for a one-event call,
-- measured with the inbound append); the generic plans are the same index look-ups.
ALTER FUNCTION mldeploy_inbound_append(text, text[], int[], jsonb[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION mldeploy_stream_append(text, text[], jsonb[]) SET plan_cache_mode = force_generic_plan;
