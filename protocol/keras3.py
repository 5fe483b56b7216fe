"""The one sentence for Keras 3 in a multi-task job, said by `validate` and by the task that hit it."""

# Why a multi-task job cannot train with the standalone `keras` package (Keras 3, which TensorFlow 2.21 installs),
# in the same words from `validate` (controller/spec/keras3_imports.py) and from the task whose training failed
# inside it (workers/keras3_failure.py). The fix comes first: `tfray status` shows 160 characters of a failure.
KERAS3_UNSUPPORTED = ("Keras 3 (the `keras` package) cannot train a multi-worker or parameter-server job: use "
                      "tf-keras, `import tf_keras as keras` or `tf.keras` (tf-keras in every task: "
                      "TF_USE_LEGACY_KERAS=1); "
                      "Keras 3 supports neither MultiWorkerMirroredStrategy (keras-team/keras#20585) nor "
                      "parameter-server training (keras-team/keras#18624)")
