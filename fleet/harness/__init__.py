"""The node harness: runs MLPerf Inference v3.1 scenarios with LoadGen on one machine.

`python -m fleet.harness run|synth|facts` (see cli.py). Deployed to nodes on its own: it
imports nothing from the rest of `fleet` except `fleet.__version__`, and heavy dependencies
(onnxruntime, onnx, cv2, mlperf_loadgen) are imported only where they are used, so importing
`fleet.harness` stays cheap and works on a controller without them.
"""
