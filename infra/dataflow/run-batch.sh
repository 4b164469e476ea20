#!/usr/bin/env bash
# Batch job on Dataflow: every scan under gs://$BUCKET/scans into BigQuery dataset $DATASET.
# TF Serving must be reachable from the workers' VPC (infra/tfserving/kubernetes.yaml).
# Check the job offline first: add --dry-run (writes dataflow-job.json, needs no credentials).
set -euo pipefail
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}" "${DATASET:=formdigits}"
: "${SERVING:=dns:///tfserving.formdigits.svc.cluster.local:8500}"
formdigits run \
  --runner DataflowRunner --project "$PROJECT" --region "$REGION" --temp-location "gs://$BUCKET/tmp" \
  --input "gs://$BUCKET/scans/*" --templates "gs://$BUCKET/templates" \
  --output "bq:$PROJECT:$DATASET" --serving "$SERVING" --model lenet5 --model-label stable \
  --max_num_workers=20 --machine_type=n2-standard-4 --experiments=use_runner_v2 "$@"
