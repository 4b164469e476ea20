#!/usr/bin/env bash
# Streaming job on Dataflow: new scans arrive as GCS object notifications on Pub/Sub.
#   gcloud storage buckets notifications create gs://$BUCKET --topic=formdigits-scans --event-types=OBJECT_FINALIZE
#   gcloud pubsub subscriptions create formdigits-scans --topic=formdigits-scans
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${DATASET:=formdigits}"
: "${SERVING:=dns:///tfserving.formdigits.svc.cluster.local:8500}"
formdigits run \
  --runner DataflowRunner --project "$PROJECT" --region "$REGION" --temp-location "gs://$BUCKET/tmp" \
  --streaming --input-subscription "projects/$PROJECT/subscriptions/formdigits-scans" \
  --input "gs://$BUCKET/scans/*" --templates "gs://$BUCKET/templates" \
  --output "bq:$PROJECT:$DATASET" --serving "$SERVING" --window-seconds 30 \
  --max_num_workers=10 --machine_type=n2-standard-4 --enable_streaming_engine "$@"
