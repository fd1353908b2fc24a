#!/bin/sh
# Submits the workers of a data-parallel bertd job as a Kubernetes Indexed Job, one pod per rank:
# the server's --external_launch_command (overlays/multinode). bertd runs it once per attempt with
# BERTD_JOB_ID, BERTD_WORLD_SIZE, BERTD_PLAN, BERTD_JOB_DIR and BERTD_ATTEMPT set, and returns as
# soon as the Job is created; the pods then report through the shared volume.
#   BERTD_TRAINING_VARIANT=gpu   one GPU per rank (training/gpu); default cpu (training/job)
#   BERTD_LAUNCH_DRY_RUN=1       print the manifest instead of applying it
# Needs kubectl 1.21 or newer (kustomize v4 inside) and a ServiceAccount allowed to create Jobs.
set -eu
: "${BERTD_JOB_ID:?set by bertd}" "${BERTD_WORLD_SIZE:?set by bertd}" "${BERTD_PLAN:?set by bertd}"
attempt=${BERTD_ATTEMPT:-1}
here=$(cd "$(dirname "$0")" && pwd)
case ${BERTD_TRAINING_VARIANT:-cpu} in
  cpu) base=training/job ;;
  gpu) base=training/gpu ;;
  *) echo "BERTD_TRAINING_VARIANT: expected cpu or gpu, got ${BERTD_TRAINING_VARIANT}" >&2; exit 2 ;;
esac
# kustomize takes only relative bases: a copy of this directory beside the generated file.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -R "$here" "$work/training"
# Job names must be DNS labels: bertd-train-<12 hex of the job id>-<attempt>.
cat >"$work/kustomization.yaml" <<EOF
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - $base
nameSuffix: -${BERTD_JOB_ID#job-}-$attempt
labels:
  - pairs:
      bertd/job-id: $BERTD_JOB_ID
patches:
  - patch: |-
      apiVersion: batch/v1
      kind: Job
      metadata:
        name: bertd-train
      spec:
        completions: $BERTD_WORLD_SIZE
        parallelism: $BERTD_WORLD_SIZE
        template:
          spec:
            containers:
              - name: worker
                args: ["--worker_plan=$BERTD_PLAN"]
                env:
                  - name: WORLD_SIZE
                    value: "$BERTD_WORLD_SIZE"
EOF
if [ "${BERTD_LAUNCH_DRY_RUN:-0}" = 1 ]; then
  kubectl kustomize "$work"
else
  kubectl kustomize "$work" | kubectl apply -f -
fi
