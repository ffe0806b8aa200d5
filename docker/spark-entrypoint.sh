#!/bin/bash
# The entrypoint of the `spark` image, in the contract Spark on Kubernetes expects of an image
# (the Spark operator and `spark-submit --master k8s://...` start its pods with these commands):
#   driver ARGS...   spark-submit in client mode on this pod, with the ARGS Spark gives
#   executor         an executor that connects back to the driver (SPARK_* variables set by Spark)
#   anything else    run as given (`python -m predictor ...`, a shell for debugging)
set -euo pipefail

case "${1:-}" in
  driver)
    shift
    bind=()
    if [ -n "${SPARK_DRIVER_BIND_ADDRESS:-}" ]; then
      bind=(--conf "spark.driver.bindAddress=${SPARK_DRIVER_BIND_ADDRESS}"
            --conf "spark.executorEnv.SPARK_DRIVER_POD_IP=${SPARK_DRIVER_BIND_ADDRESS}")
    fi
    exec "${SPARK_HOME}/bin/spark-submit" "${bind[@]}" --deploy-mode client "$@"
    ;;
  executor)
    shift
    # Spark passes the executor's JVM options as SPARK_JAVA_OPT_0, _1, ... in order.
    java_opts=()
    while IFS= read -r name; do
      java_opts+=("${!name}")
    done < <(env | grep -o '^SPARK_JAVA_OPT_[0-9]*' | sort -t_ -k4 -n)
    exec java "${java_opts[@]}" \
      -Xms"${SPARK_EXECUTOR_MEMORY}" -Xmx"${SPARK_EXECUTOR_MEMORY}" \
      -cp "${SPARK_HOME}/conf:${SPARK_HOME}/jars/*${SPARK_CLASSPATH:+:${SPARK_CLASSPATH}}" \
      org.apache.spark.scheduler.cluster.k8s.KubernetesExecutorBackend \
      --driver-url "${SPARK_DRIVER_URL}" --executor-id "${SPARK_EXECUTOR_ID}" \
      --cores "${SPARK_EXECUTOR_CORES}" --app-id "${SPARK_APPLICATION_ID}" \
      --hostname "${SPARK_EXECUTOR_POD_IP}" \
      --resourceProfileId "${SPARK_RESOURCE_PROFILE_ID:-0}" \
      --podName "${SPARK_EXECUTOR_POD_NAME}"
    ;;
  *)
    exec "$@"
    ;;
esac
