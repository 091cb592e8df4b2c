//VERSION=3
// FLAIR Sentinel-2 L2A series for one super-area (flair_pipeline.sentinel2.sentinelhub).
//
// ORBIT mosaicking gives one sample per acquisition (orbit) of the time range, cloudy ones
// included: FLAIR keeps every date and ships the SNW/CLD probabilities so that models decide.
// Outputs, scene-major (scene i owns bands i*10 .. i*10+9, resp. i*2 .. i*2+1):
//   "data"  UINT16, 10 bands per scene: B02 B03 B04 B05 B06 B07 B08 B8A B11 B12, DN =
//           reflectance x 10000 (harmonizeValues, set in the request, removes the L2A offset);
//   "masks" UINT8, 2 bands per scene: SNW, CLD probabilities 0..100;
//   userdata.json: {orbits: [{dateFrom, tiles: [{productId, dataPath, shId, date}]}]}, in the
//           same order as the bands, so the client can name and date each scene.
// With no scene at all the outputs keep one (zero) scene: a zero-band TIFF is not a valid
// response; userdata then lists no orbit and the client reports the grid as empty.

const BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"];
const MASKS = ["SNW", "CLD"];

function setup() {
  return {
    input: [{
      bands: BANDS.concat(MASKS),
      units: BANDS.map(function () { return "DN"; }).concat(["PERCENT", "PERCENT"]),
    }],
    output: [
      { id: "data", bands: BANDS.length, sampleType: "UINT16" },
      { id: "masks", bands: MASKS.length, sampleType: "UINT8" },
    ],
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
  const data = new Array(BANDS.length * n).fill(0);
  const masks = new Array(MASKS.length * n).fill(0);
  for (let i = 0; i < samples.length; i++) {
    const s = samples[i];
    for (let b = 0; b < BANDS.length; b++) {
      data[i * BANDS.length + b] = s[BANDS[b]];
    }
    for (let m = 0; m < MASKS.length; m++) {
      masks[i * MASKS.length + m] = s[MASKS[m]];
    }
  }
  return { data: data, masks: masks };
}

function updateOutputMetadata(scenes, inputMetadata, outputMetadata) {
  outputMetadata.userData = {
    serviceVersion: inputMetadata.serviceVersion,
    orbits: orbitsOf(scenes).map(function (orbit) {
      return {
        dateFrom: orbit.dateFrom,
        tiles: (orbit.tiles || []).map(function (tile) {
          return {
            productId: tile.productId,
            dataPath: tile.dataPath,
            shId: tile.shId,
            date: tile.date,
          };
        }),
      };
    }),
  };
}
