-- The example domain: NYC green-taxi style rides (see `mldeploy data seed`).
CREATE TABLE IF NOT EXISTS rides (
  ride_id                bigint PRIMARY KEY,
  lpep_pickup_datetime   timestamp,
  lpep_dropoff_datetime  timestamp,
  "PULocationID"         integer,
  "DOLocationID"         integer,
  trip_distance          double precision,
  fare_amount            double precision,
  tip_amount             double precision,
  passenger_count        integer,
  payment_type           integer
);
CREATE INDEX IF NOT EXISTS rides_pickup_idx ON rides (lpep_pickup_datetime);

-- What the course's batch job scores: rides with their actual duration in minutes.
CREATE OR REPLACE VIEW ride_durations AS
SELECT r.*,
       extract(epoch FROM (lpep_dropoff_datetime - lpep_pickup_datetime)) / 60.0 AS duration
FROM rides r;
