"""The paper's published numbers, in one place, for printing beside ours (never used in
any computation). Layer keys use the paper's names."""

from __future__ import annotations

#: Table 2: % of non-zeros per layer of VGG16 on the ILSVRC 2012 validation set.
TABLE2_VGG16 = {
    "conv1_1": 49.1, "conv1_2": 69.7, "pool1": 80.8,
    "conv2_1": 67.4, "conv2_2": 49.7, "pool2": 70.7,
    "conv3_1": 53.4, "conv3_2": 51.9, "conv3_3": 28.7, "pool3": 45.9,
    "conv4_1": 35.6, "conv4_2": 29.6, "conv4_3": 12.6, "pool4": 23.1,
    "conv5_1": 23.9, "conv5_2": 20.6, "conv5_3": 7.3, "pool5": 13.1,
}  # fmt: skip

#: Table 7: % of non-zeros per layer of AlexNet on ILSVRC 2012 validation.
TABLE7_ALEXNET = {
    "conv1": 49.41, "pool1": 87.79, "conv2": 18.97, "pool2": 44.13,
    "conv3": 31.08, "conv4": 30.95, "conv5": 9.78, "pool5": 28.15,
}  # fmt: skip

#: Table 3: coherence of learned VGG16 filters and of Gaussian filters of the same size.
TABLE3_VGG16 = {
    "conv1_1": (0.943, 0.670), "conv1_2": (0.734, 0.122),
    "conv2_1": (0.644, 0.155), "conv2_2": (0.747, 0.105),
    "conv3_1": (0.584, 0.110), "conv3_2": (0.484, 0.090), "conv3_3": (0.519, 0.080),
    "conv4_1": (0.460, 0.092), "conv4_2": (0.457, 0.062), "conv4_3": (0.404, 0.062),
    "conv5_1": (0.410, 0.070), "conv5_2": (0.410, 0.067), "conv5_3": (0.405, 0.067),
}  # fmt: skip

#: Table 6: the same for AlexNet.
TABLE6_ALEXNET = {
    "conv1": (0.9172, 0.1996), "conv2": (0.6643, 0.1263), "conv3": (0.6200, 0.0929),
    "conv4": (0.6382, 0.1073), "conv5": (0.3390, 0.1026),
}  # fmt: skip

#: Table 4: relative errors (learned filters, random filters, random activations), for
#: macro layers 1-4, in image space and activation space.
TABLE4_IMAGE = {
    "pool1": (0.423, 0.380, 0.610), "pool2": (0.692, 0.438, 0.864),
    "pool3": (0.326, 0.345, 0.652), "pool4": (0.379, 0.357, 0.436),
}  # fmt: skip
TABLE4_ACTIVATION = {
    "pool1": (0.895, 0.872, 1.414), "pool2": (0.961, 0.926, 1.414),
    "pool3": (0.912, 0.862, 1.414), "pool4": (1.051, 0.992, 1.414),
}  # fmt: skip

#: Figure 3 (§4.4): what the text says of the histograms (no numbers are printed).
FIG3 = {
    "synthetic": "clearly centred around 1, short tail roughly bounded by delta_k < 1",
    "recovered": "centre offset from 1 below 0.05, range bound delta_k roughly below 0.05",
    "max_centre_offset": 0.05,
}
