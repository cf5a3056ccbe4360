"""Device meshes and multi-process set-up of pre-training runs."""

def make_distribution(keras, model_parallel):
    """DataParallel over all devices, or ModelParallel on a `batch x model` mesh."""
    devices = keras.distribution.list_devices()
    if not model_parallel:
        return keras.distribution.DataParallel(devices=devices)
    from keras_unilmv2.models.unilmv2_backbone import UniLMv2Backbone

    data, model = (int(v) for v in model_parallel.lower().split("x"))
    if data * model != len(devices):
        raise ValueError(
            f"`--mesh {model_parallel}` needs {data * model} devices; found {len(devices)}."
        )
    mesh = keras.distribution.DeviceMesh((data, model), ["batch", "model"], devices)
    layout_map = UniLMv2Backbone.get_layout_map(mesh)
    return keras.distribution.ModelParallel(layout_map=layout_map, batch_dim_name="batch")
