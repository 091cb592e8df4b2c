//VERSION=3
// FLAIR-HUB Sentinel-1 series for one super-area and one orbit direction
// (flair_pipeline.sentinel1.sentinelhub). The request sets the collection (SENTINEL1_IW),
// dataFilter.orbitDirection, and processing {backCoeff, orthorectify: true, demInstance}.
//
// ORBIT mosaicking gives one sample per acquisition of the time range.
// Output "data" FLOAT32, 2 bands per scene (scene i owns bands 2i, 2i+1): VV, VH backscatter
// in LINEAR power units (the coefficient the request asks for); NaN where dataMask is 0
// (no data, border noise removed by the service). dB is computed by the client, not here.
// userdata.json: {orbits: [{dateFrom, tiles: [{productId, dataPath, shId, date}]}]}, in band order.
// With no scene the output keeps one (NaN) scene and userdata lists no orbit.

function setup() {
  return {
    input: [{ bands: ["VV", "VH", "dataMask"] }],
    output: [{ id: "data", bands: 2, sampleType: "FLOAT32" }],
    mosaicking: "ORBIT",
  };
}

function orbitsOf(scenes) {
  return scenes.orbits || scenes;
}

function updateOutput(outputs, collection) {
  const n = Math.max(orbitsOf(collection.scenes).length, 1);
  Object.values(outputs).forEach(function (output) {
    output.bands = output.bands * n;
  });
}

function evaluatePixel(samples) {
  const n = Math.max(samples.length, 1);
  const data = new Array(2 * n).fill(NaN);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    if (s.dataMask === 1) {
      data[2 * i] = s.VV;
      data[2 * i + 1] = s.VH;
    }
  }
  return { data: data };
}

function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {
    serviceVersion: inputMetadata.serviceVersion,
    orbits: orbitsOf(scenes).map(function (orbit) {
      return {
        dateFrom: orbit.dateFrom,
        tiles: (orbit.tiles || []).map(function (tile) {
          return { productId: tile.productId, dataPath: tile.dataPath, shId: tile.shId, date: tile.date };
        }),
      };
    }),
  };
}
