"""`pixel_keras.testing.receptive_field`: measured from exact input gradients."""

import pytest

from pixel_keras import testing, training


def _gated(num_layers, kernel_size, image_shape=(6, 6, 1)):
    return training.make_model(
        "gated_pixelcnn",
        image_shape=image_shape,
        num_levels=16,
        hidden_maps=16,
        num_layers=num_layers,
        kernel_size=kernel_size,
        output_maps=16,
    )


def test_deep_gated_stack_sees_the_whole_causal_context():
    # 3 layers of 5 x 5 (k = 2): rows i - 1 - 6 ... i - 1, columns j +- 6.
    field = testing.receptive_field(_gated(3, 5), num_images=8)
    assert field == {
        "positions": 36,
        "rows_above": 36,
        "full_context": 36,
        "min_context_fraction": 1.0,
        "max_rows_up": 5,
    }


def test_shallow_gated_stack_sees_a_band_of_rows():
    # 2 layers of 3 x 3 (k = 1): the last row sees 1 + 2 * 1 = 3 rows up.
    field = testing.receptive_field(_gated(2, 3))
    assert field["max_rows_up"] == 3
    assert field["rows_above"] < field["positions"]
    assert field["min_context_fraction"] < 1.0


def test_rgb_sub_pixels_count_as_outputs():
    field = testing.receptive_field(_gated(2, 5, image_shape=(4, 4, 3)), num_images=8)
    assert field["positions"] == 48
    assert field["full_context"] == 48


def test_pixelcnn_blind_spot_is_measured():
    model = training.make_model(
        "pixelcnn",
        image_shape=(6, 6, 1),
        num_levels=16,
        hidden_maps=16,
        num_residual_blocks=2,
        output_maps=16,
    )
    field = testing.receptive_field(model)
    # PixelCNN's stacked masked convolutions miss pixels up and to the right.
    assert field["full_context"] < field["positions"]


@pytest.mark.parametrize("batch_size", [1, 4])
def test_batch_size_does_not_change_the_result(batch_size):
    model = _gated(2, 3, image_shape=(3, 3, 1))
    assert testing.receptive_field(model, batch_size=batch_size) == (
        testing.receptive_field(model, batch_size=64)
    )
